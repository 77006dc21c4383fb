//! Every reader on mangled input: valid files with random bytes flipped, inserted, deleted or
//! cut, and pure noise. Each must end in an error or in tables that load, never in a panic.
//! Seeded, so a failure repeats.

use simforge_data::prep::{prep, PrepConfig};
use simforge_data::rng::Rng;
use simforge_data::sources::Format;
use simforge_data::tables::Dataset;

#[path = "support/mangle.rs"]
mod support;
use support::{cases, mangle};

/// Noise (one case in eight) or `valid` mangled.
fn noise_or_mangled(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    if rng.chance(0.125) {
        return (0..rng.below(400)).map(|_| rng.below(256) as u8).collect();
    }
    mangle(valid, rng)
}

/// Runs `prep` on `files` (written into a fresh folder), strict and skipping, and checks that a
/// success loads back.
fn survives(format: Format, files: &[(&str, Vec<u8>)], input_file: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    std::fs::create_dir(&source).expect("mkdir");
    for (name, bytes) in files {
        std::fs::write(source.join(name), bytes).expect("write");
    }
    let input = input_file.map_or_else(|| source.clone(), |f| source.join(f));
    for skip_invalid in [false, true] {
        let out = dir.path().join(format!("out-{skip_invalid}"));
        let config = PrepConfig { format: Some(format), input: Some(input.clone()), skip_invalid, ..PrepConfig::default() };
        if prep(&config, &out).is_ok() {
            let dataset = Dataset::load(&out).unwrap_or_else(|e| panic!("{format:?}: prep succeeded but its tables do not load: {e}"));
            assert!(dataset.interactions.iter().all(|x| x.rating.is_none_or(f32::is_finite)), "{format:?}: a non-finite rating was stored");
        }
    }
}

fn fuzz(format: Format, valid: &[(&str, &[u8])], input_file: Option<&str>) {
    let mut rng = Rng::stream(7, "fuzz", format as u64);
    for _ in 0..cases() {
        // One file mangled per case; the others stay valid so the reader gets past them.
        let victim = rng.below(valid.len());
        let files: Vec<(&str, Vec<u8>)> =
            valid.iter().enumerate().map(|(i, (name, bytes))| (*name, if i == victim { noise_or_mangled(bytes, &mut rng) } else { bytes.to_vec() })).collect();
        survives(format, &files, input_file);
    }
}

#[test]
fn movielens_readers_survive_mangled_files() {
    let data: &[u8] = b"1\t1\t4\t881250949\n1\t2\t3\t881250950\n2\t1\t5\t881250951\n2\t3\t1\t881250952\n";
    let items: &[u8] = b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n2|Heat (1995)|01-Jan-1995||http://y|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
    let users: &[u8] = b"1|24|M|technician|85711\n2|53|F|other|94043\n";
    fuzz(Format::Movielens, &[("u.data", data), ("u.item", items), ("u.user", users)], None);
    let ratings: &[u8] = b"1::1::5::978300760\n1::2::3::978302109\n2::1::4::978301968\n";
    let movies: &[u8] = b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure|Children's|Fantasy\n";
    fuzz(Format::Movielens, &[("ratings.dat", ratings), ("movies.dat", movies)], None);
}

#[test]
fn recbole_reader_survives_mangled_files() {
    let inter: &[u8] = b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t881250949\n1\t11\t3\t881250950\n2\t10\t5\t881250951\n";
    let item: &[u8] =
        b"item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n10\tToy Story\t1995\tAnimation Comedy\n11\tHeat\t1995\tAction\n";
    fuzz(Format::Recbole, &[("d.inter", inter), ("d.item", item)], None);
}

#[test]
fn amazon_reader_survives_mangled_files() {
    let reviews: &[u8] = b"{\"reviewerID\": \"A1\", \"asin\": \"B1\", \"overall\": 5.0, \"unixReviewTime\": 1000000000, \"reviewText\": \"good\"}\n\
{\"reviewerID\": \"A2\", \"asin\": \"B1\", \"overall\": 2.0, \"unixReviewTime\": 1000000100, \"summary\": \"meh\"}\n\
{\"user_id\": \"A1\", \"parent_asin\": \"B2\", \"rating\": 4.0, \"timestamp\": 1000000200000, \"title\": \"t\", \"text\": \"x\"}\n";
    fuzz(Format::Amazon, &[("reviews.json", reviews)], Some("reviews.json"));
}

#[test]
fn sasrec_reader_survives_mangled_files() {
    let lines: &[u8] = b"1 1\n1 2\n1 3\n2 2\n2 3\n3 1\n";
    fuzz(Format::Sasrec, &[("seq.txt", lines)], Some("seq.txt"));
}

#[test]
fn a_mangled_world_file_is_an_error_or_a_world() {
    let world: &[u8] = b"users = 20\nitems = 60\ninteractions_per_user = 8\nexposure = 5\n";
    let mut rng = Rng::stream(7, "fuzz-world", 0);
    for _ in 0..cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("world.toml");
        std::fs::write(&path, mangle(world, &mut rng)).expect("write");
        let config = PrepConfig { format: Some(Format::Synthetic), input: Some(path), ..PrepConfig::default() };
        if prep(&config, &dir.path().join("out")).is_ok() {
            Dataset::load(&dir.path().join("out")).expect("a world that was written loads");
        }
    }
}
