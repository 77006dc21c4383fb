//! Each reader on small files written in the real formats, and its errors on bad input.

use std::path::{Path, PathBuf};

use simforge_data::prep::{prep, PrepConfig};
use simforge_data::sources::{detect::detect, Format};
use simforge_data::tables::{Dataset, TimeKind};
use simforge_data::DataError;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

fn run(input: &Path, format: Option<Format>, skip_invalid: bool) -> Result<Dataset, DataError> {
    let out = tempfile::tempdir().expect("tempdir");
    let config = PrepConfig { format, input: Some(input.to_path_buf()), skip_invalid, ..PrepConfig::default() };
    prep(&config, out.path())?;
    Dataset::load(out.path())
}

#[test]
fn movielens_100k_latin1_with_genre_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = |on: &[usize]| (0..19).map(|i| if on.contains(&i) { "1" } else { "0" }).collect::<Vec<_>>().join("|");
    let items = format!(
        "1|Toy Story (1995)|01-Jan-1995||http://x|{}\n2|Cit\u{e9} des enfants perdus, La (1995)|01-Jan-1995||http://y|{}\n",
        flags(&[3, 4, 5]),
        flags(&[8])
    );
    // u.item is latin-1: write é as the single byte 0xE9.
    let latin: Vec<u8> = items.chars().map(|c| c as u32 as u8).collect();
    write(dir.path(), "u.item", &latin);
    write(dir.path(), "u.user", b"1|24|M|technician|85711\n2|53|F|other|94043\n");
    write(dir.path(), "u.data", b"2\t1\t4\t881250950\n1\t2\t3\t881250949\n1\t1\t5\t881250940\n");
    assert_eq!(detect(dir.path()).expect("detect"), Format::Movielens);
    let d = run(dir.path(), None, false).expect("prep");
    assert_eq!((d.users.len(), d.items.len(), d.interactions.len()), (2, 2, 3));
    assert_eq!(d.items[0].title, "Toy Story");
    assert_eq!(d.items[0].year, Some(1995));
    assert_eq!(d.items[0].categories, ["Animation", "Children's", "Comedy"]);
    assert_eq!(d.items[1].title, "Cité des enfants perdus, La");
    assert_eq!(d.users[0].occupation.as_deref(), Some("technician"));
    // Sorted by (user, time): user "1" has two interactions, earliest first.
    assert_eq!(d.interactions[0].timestamp, 881250940);
    assert_eq!(d.interactions[1].timestamp, 881250949);
    assert_eq!(d.items[0].popularity, 2);
}

#[test]
fn movielens_dat_counts_catalogue_and_names_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "movies.dat", b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Heat (1995)::Action\n3::Unseen (1990)::Drama\n");
    write(dir.path(), "users.dat", b"1::F::1::10::48067\n2::M::56::16::70072\n");
    write(dir.path(), "ratings.dat", b"1::1::5::978300760\r\n1::2::3::978302109\r\n2::1::4::978301968");
    let d = run(dir.path(), None, false).expect("prep");
    assert_eq!((d.users.len(), d.items.len(), d.interactions.len(), d.stats.catalog_items), (2, 2, 3, 3));
    assert_eq!(d.users[0].occupation.as_deref(), Some("K-12 student"));

    write(dir.path(), "ratings.dat", b"1::1::5::978300760\n1::2::x::978302109\n");
    let err = run(dir.path(), None, false).expect_err("bad rating").to_string();
    assert!(err.contains("ratings.dat:2") && err.contains("rating"), "{err}");
    let d = run(dir.path(), None, true).expect("skip");
    assert_eq!((d.interactions.len(), d.stats.skipped_lines), (1, 1));

    write(dir.path(), "ratings.dat", b"1::1::5::99999999999\n");
    let err = run(dir.path(), None, false).expect_err("timestamp").to_string();
    assert!(err.contains(":1") && err.contains("timestamp"), "{err}");

    write(dir.path(), "ratings.dat", b"1::1::5::978300760\n");
    write(dir.path(), "movies.dat", b"1::Toy Story (1995)::Animation\n1::Again (1995)::Drama\n");
    let err = run(dir.path(), None, false).expect_err("duplicate").to_string();
    assert!(err.contains("movies.dat:2") && err.contains("duplicate id \"1\""), "{err}");
}

#[test]
fn recbole_headers_are_typed_and_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "toy.inter", b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\ta\t4\t100\n1\tb\t2\t50\n2\ta\t5\t70\n");
    write(
        dir.path(),
        "toy.item",
        b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\na\tHeat\t1995\tAction Crime\nb\tUp\t2009\tAnimation\n",
    );
    assert_eq!(detect(dir.path()).expect("detect"), Format::Recbole);
    let d = run(dir.path(), None, false).expect("prep");
    assert_eq!(d.stats.dataset, "toy");
    assert_eq!(d.items[0].categories, ["Action", "Crime"]);
    assert_eq!(d.interactions[0].item_id, 1, "user 1's earlier interaction (t=50) is item b");

    write(dir.path(), "toy.inter", b"user:token\titem_id:token\n1\ta\n");
    match run(dir.path(), None, false) {
        Err(DataError::MissingColumn { column, .. }) => assert_eq!(column, "user_id"),
        other => panic!("expected a missing column, got {other:?}"),
    }
    write(dir.path(), "toy.inter", b"user_id:token\titem_id:token\n1\ta\n2\n");
    let err = run(dir.path(), None, false).expect_err("short line").to_string();
    assert!(err.contains("toy.inter:3") && err.contains("2 tab-separated fields"), "{err}");
    write(dir.path(), "toy.inter", b"user_id:token\titem_id:token\n1\ta\n");
    let d = run(dir.path(), None, false).expect("no timestamps");
    assert_eq!(d.stats.time_kind, TimeKind::Sequence);
}

#[test]
fn recbole_ratings_off_the_star_scale_need_their_scale() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "jokes.inter", b"user_id:token\titem_id:token\trating:float\n1\ta\t-10\n1\tb\t10\n2\ta\t2.5\n");
    let err = run(dir.path(), None, false).expect_err("-10 is not stars").to_string();
    assert!(err.contains("jokes.inter:2") && err.contains("--rating-scale"), "{err}");

    let with_scale = |scale: &str| {
        let out = tempfile::tempdir().expect("tempdir");
        let config = PrepConfig { input: Some(dir.path().to_path_buf()), rating_scale: Some(scale.parse().expect("scale")), ..PrepConfig::default() };
        prep(&config, out.path()).and_then(|_| Dataset::load(out.path()))
    };
    let d = with_scale("-10:10").expect("mapped");
    let stars: Vec<Option<f32>> = d.interactions.iter().map(|x| x.rating).collect();
    assert_eq!(stars, [Some(1.0), Some(5.0), Some(3.5)]);
    let err = with_scale("0:10").expect_err("-10 is outside 0:10").to_string();
    assert!(err.contains("jokes.inter:2") && err.contains("between 0 and 10"), "{err}");
    assert!("10:1".parse::<simforge_data::sources::RatingScale>().is_err() && "nan:1".parse::<simforge_data::sources::RatingScale>().is_err());

    let ml = tempfile::tempdir().expect("tempdir");
    write(ml.path(), "u.data", b"1\t1\t4\t881250950\n");
    let config = PrepConfig { input: Some(ml.path().to_path_buf()), rating_scale: Some("1:10".parse().expect("scale")), ..PrepConfig::default() };
    let err = prep(&config, &ml.path().join("out")).expect_err("MovieLens is stars").to_string();
    assert!(err.contains("applies to RecBole"), "{err}");
}

#[test]
fn amazon_2018_and_2023_with_meta_and_gzip() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let reviews = concat!(
        "{\"user_id\": \"U1\", \"parent_asin\": \"P1\", \"rating\": 5.0, \"timestamp\": 1588687728923, \"title\": \"Great\", \"text\": \"Loved it\"}\n",
        "{\"user_id\": \"U1\", \"parent_asin\": \"P2\", \"rating\": 2.0, \"timestamp\": 1588687700000, \"title\": \"\", \"text\": \"Meh\"}\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(reviews.as_bytes()).expect("gzip");
    write(dir.path(), "Video_Games.jsonl.gz", &gz.finish().expect("gzip"));
    write(
        dir.path(),
        "meta_Video_Games.jsonl",
        b"{\"parent_asin\": \"P1\", \"title\": \"Space Game\", \"categories\": [\"Video Games\", \"PC\"], \"description\": [\"A game.\"]}\n",
    );
    assert_eq!(detect(dir.path()).expect("detect"), Format::Amazon);
    let d = run(dir.path(), None, false).expect("prep");
    assert_eq!(d.interactions.len(), 2);
    assert_eq!(d.interactions[0].timestamp, 1588687700, "milliseconds become seconds, earliest first");
    assert_eq!(d.interactions[1].review.as_deref(), Some("Great. Loved it"));
    let space = d.items.iter().find(|i| i.raw_id == "P1").expect("P1");
    assert_eq!((space.title.as_str(), space.categories.len(), space.description.as_deref()), ("Space Game", 2, Some("A game.")));

    let one = tempfile::tempdir().expect("tempdir");
    let path = write(
        one.path(),
        "Books_5.json",
        b"{\"reviewerID\": \"A\", \"asin\": \"B\", \"overall\": 4.0, \"unixReviewTime\": 1227398400, \"reviewText\": \"ok\"}\n{\"reviewerID\": \"A\", \"as",
    );
    let err = run(&path, Some(Format::Amazon), false).expect_err("truncated").to_string();
    assert!(err.contains("Books_5.json:2") && err.contains("complete JSON review record"), "{err}");
}

#[test]
fn sasrec_positions_are_time_and_wrong_format_guesses_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "Video.txt", b"1 10\n1 11\n2 10\n");
    assert_eq!(detect(&path).expect("detect"), Format::Sasrec);
    let d = run(&path, None, false).expect("prep");
    assert_eq!(d.stats.time_kind, TimeKind::Sequence);
    assert_eq!(d.interactions.iter().map(|x| x.timestamp).collect::<Vec<_>>(), [1, 2, 1]);
    assert_eq!(d.items[0].title, "Item 10");

    let err = run(&path, Some(Format::Amazon), false).expect_err("not JSON").to_string();
    assert!(err.contains("Video.txt:1"), "{err}");
    let junk = write(dir.path(), "notes.md", b"# hello\n");
    let err = detect(&junk).expect_err("undetectable").to_string();
    assert!(err.contains("cannot detect"), "{err}");
    let empty = write(dir.path(), "empty.txt", b"");
    let err = run(&empty, Some(Format::Sasrec), false).expect_err("empty").to_string();
    assert!(err.contains("empty"), "{err}");
    let err = run(&dir.path().join("missing.txt"), Some(Format::Sasrec), false).expect_err("missing").to_string();
    assert!(err.contains("missing.txt"), "{err}");
}

#[test]
fn k_core_filter_iterates_until_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Users 1-3 share items a,b; user 4 only has c (and c only user 4).
    let path = write(dir.path(), "seq.txt", b"1 1\n1 2\n2 1\n2 2\n3 1\n3 2\n4 3\n4 1\n");
    let out = tempfile::tempdir().expect("tempdir");
    let config = PrepConfig { input: Some(path), min_user_interactions: 2, min_item_interactions: 2, ..PrepConfig::default() };
    let stats = prep(&config, out.path()).expect("prep");
    // Item 3 goes (1 interaction), then user 4 has 1 interaction and goes too.
    assert_eq!((stats.users, stats.items, stats.interactions), (3, 2, 6));
    let d = Dataset::load(out.path()).expect("load");
    assert!(d.interactions.windows(2).all(|w| (w[0].user_id, w[0].timestamp) <= (w[1].user_id, w[1].timestamp)));
}
