//! The embedded default's data carries no answer outside the user: the synthetic world's clock
//! is consistent, its impression scenes cannot be solved by a rule on item metadata, and its
//! defect samples cannot be told apart by the surface of the defective profile.

use std::collections::BTreeMap;
use std::path::Path;

use simforge_data::defects::{defects, DefectsConfig, DEFECTS_FILE};
use simforge_data::parquet_io::Table;
use simforge_data::prep::{prep, PrepConfig};
use simforge_data::profile::Profile;
use simforge_data::profiles::{profiles, ProfilesConfig};
use simforge_data::scenes::{build_scenes, ExposureSource, ScenesConfig};
use simforge_data::sources::synthetic::WorldConfig;
use simforge_data::sources::Format;
use simforge_data::split::{split, SplitConfig};
use simforge_data::tables::{Dataset, Split};

fn world(dir: &Path, users: usize) -> Dataset {
    let world = WorldConfig { users, items: 600, interactions_per_user: 30, ..WorldConfig::default() };
    let config = PrepConfig { format: Some(Format::Synthetic), seed: Some(3), world: Some(world), ..PrepConfig::default() };
    prep(&config, dir).expect("prep");
    Dataset::load(dir).expect("load")
}

#[test]
fn the_world_logs_its_impressions_and_releases_before_consumption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dataset = world(dir.path(), 200);
    let impressions = dataset.impressions.as_ref().expect("the synthetic world logs what it showed");
    assert_eq!(impressions.len(), dataset.interactions.len());
    for (x, shown) in dataset.interactions.iter().zip(impressions) {
        assert_eq!(shown.len(), 10, "the default exposure");
        assert!(shown.contains(&x.item_id), "the choice is among what was shown");
        let year = dataset.items[x.item_id as usize].year.expect("years");
        assert!(i64::from(year) < 1970 + x.timestamp / 31_556_952, "item {} consumed before its release", x.item_id);
    }
}

#[test]
fn no_metadata_rule_solves_the_impression_scenes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dataset = world(dir.path(), 2_500);
    let config = ScenesConfig { train: 0, eval: 2_500, exposure: ExposureSource::Impressions, seed: Some(5), ..ScenesConfig::default() };
    let (scenes, stats) = build_scenes(&dataset, &config).expect("scenes");
    assert_eq!(scenes.len(), 2_500);
    let report = &stats.shortcuts;
    assert!((report.random - 0.2).abs() < 1e-9);
    // Co-occurrence with the history is collaborative filtering (a user's taste), not a
    // construction artefact; every rule on the items' own metadata stays within noise.
    assert_eq!(report.rules.len(), 8);
    let leaks: Vec<_> = report.leaks(3.0).into_iter().filter(|(rule, _)| !rule.contains("cooccurring")).collect();
    assert!(leaks.is_empty(), "metadata rules above random {:.3} ± {:.3}: {leaks:?}", report.random, report.standard_error);
    let sampled = build_scenes(&dataset, &ScenesConfig { exposure: ExposureSource::Sampled, ..config }).expect("sampled scenes").1.shortcuts;
    assert!(!sampled.leaks(3.0).iter().any(|(rule, _)| *rule == "newest"), "release years leak again: {sampled:?}");
}

#[test]
fn defect_classes_share_the_surface_of_their_profiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    world(&root.join("prep"), 300);
    split(&root.join("prep"), &root.join("split"), &SplitConfig::default()).expect("split");
    profiles(&root.join("prep"), &root.join("split"), &root.join("profiles"), &ProfilesConfig::default()).expect("profiles");
    let config = DefectsConfig { per_class: 150, seed: Some(1), ..DefectsConfig::default() };
    let stats = defects(&root.join("prep"), &root.join("profiles"), &root.join("defects"), &config).expect("defects");
    assert_eq!(stats.per_class, 150);
    let t = Table::read(&root.join("defects").join(DEFECTS_FILE)).expect("defects table");
    let mut shapes: BTreeMap<String, BTreeMap<(usize, usize), usize>> = BTreeMap::new();
    for (label, profile) in t.strings("label").expect("label").into_iter().zip(t.strings("profile").expect("profile")) {
        let (likes, dislikes) = Profile::stated_preferences(&profile);
        *shapes.entry(label).or_default().entry((likes.len(), dislikes.len())).or_default() += 1;
    }
    assert_eq!(shapes.len(), 3);
    let first = shapes.values().next().expect("a class").clone();
    assert!(first.len() > 1, "the profiles vary in shape: {first:?}");
    assert!(shapes.values().all(|s| *s == first), "every class has the same profile shapes: {shapes:?}");

    // What the profile's surface alone gives: the training cases' majority label per shape and
    // length (20-character steps), applied to the held-out cases, stays near chance (1/3).
    let (labels, profiles, splits) = (t.strings("label").expect("label"), t.strings("profile").expect("profile"), t.strings("split").expect("split"));
    let surface = |p: &str| {
        let (likes, dislikes) = Profile::stated_preferences(p);
        (likes.len(), dislikes.len(), p.len() / 20)
    };
    let mut seen: BTreeMap<(usize, usize, usize), BTreeMap<&str, usize>> = BTreeMap::new();
    for ((label, profile), split) in labels.iter().zip(&profiles).zip(&splits) {
        if split == Split::Train.name() {
            *seen.entry(surface(profile)).or_default().entry(label.as_str()).or_default() += 1;
        }
    }
    let held_out: Vec<usize> = (0..labels.len()).filter(|&i| splits[i] == Split::Eval.name()).collect();
    let right = held_out
        .iter()
        .filter(|&&i| seen.get(&surface(&profiles[i])).and_then(|c| c.iter().max_by_key(|(_, n)| **n)).is_some_and(|(l, _)| *l == labels[i]))
        .count();
    let accuracy = right as f64 / held_out.len() as f64;
    let error = (1.0 / 3.0 * 2.0 / 3.0 / held_out.len() as f64).sqrt();
    assert!(accuracy < 1.0 / 3.0 + 3.0 * error, "the defective profile's surface gives the label away: {accuracy:.3} on {} cases", held_out.len());
}
