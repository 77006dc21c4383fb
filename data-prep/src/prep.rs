//! `simforge prep`: a source in any supported format → the canonical tables, filtered
//! (iterated k-core on users and items), with dense ids and `stats.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::sha256_file;
use crate::parquet_io as pq;
use crate::profile::Profile;
use crate::sources::synthetic::{self, Truth, WorldConfig, WorldSpec};
use crate::sources::{amazon, detect, movielens, recbole, sasrec, Format, RatingScale, ReadOptions, SourceData};
use crate::tables::{sorted_by_user_and_time, Dataset, Interaction, Stats};

/// The ground-truth profiles of the synthetic world, beside its tables.
pub const TRUTH_FILE: &str = "truth.parquet";

/// How to read and filter a source. Used as `simforge prep` flags and as a recipe's `[prep]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrepConfig {
    /// Source format; detected from the files when omitted.
    pub format: Option<Format>,
    /// Dataset file or folder. For `synthetic`, an optional TOML file of world parameters.
    pub input: Option<PathBuf>,
    /// Keep only users with at least N interactions (applied with the item filter until stable).
    #[serde(default)]
    pub min_user_interactions: u32,
    /// Keep only items with at least N interactions.
    #[serde(default)]
    pub min_item_interactions: u32,
    /// Skip malformed lines, counting them in `stats.json`, instead of stopping at the first.
    #[serde(default)]
    pub skip_invalid: bool,
    /// The scale of a RecBole file's ratings when they are not 0–5 stars, as `LOW:HIGH`
    /// (such as `1:10`): they are mapped linearly onto 1–5 stars.
    pub rating_scale: Option<RatingScale>,
    /// Seed of the synthetic world (other formats use none).
    pub seed: Option<u64>,
    /// Synthetic world parameters written inline in a recipe (instead of `input`).
    pub world: Option<WorldConfig>,
}

/// Reads, filters and writes a dataset into `out`; returns its stats.
pub fn prep(config: &PrepConfig, out: &Path) -> Result<Stats> {
    let format = match (config.format, &config.input) {
        (Some(f), _) => f,
        (None, Some(input)) => detect::detect(input)?,
        (None, None) => return Err(DataError::config("prep", "give --input (and optionally --format), or --format synthetic")),
    };
    let input = || config.input.clone().ok_or_else(|| DataError::config("prep", format!("--input is required for format {}", format.name())));
    let options = ReadOptions { skip_invalid: config.skip_invalid };
    if config.rating_scale.is_some() && format != Format::Recbole {
        return Err(DataError::config("prep", format!("--rating-scale applies to RecBole files; {} ratings are 0–5 stars", format.name())));
    }
    let mut truth = Vec::new();
    let mut world_spec = None;
    let source = match format {
        Format::Movielens => movielens::read(&input()?, options)?,
        Format::Recbole => recbole::read(&input()?, options, config.rating_scale)?,
        Format::Amazon => amazon::read(&input()?, options)?,
        Format::Sasrec => sasrec::read(&input()?, options)?,
        Format::Synthetic => {
            let world = match (&config.world, &config.input) {
                (Some(w), _) => w.clone(),
                (None, Some(path)) => WorldConfig::load(path)?,
                (None, None) => WorldConfig::default(),
            };
            let spec = WorldSpec { config: world, seed: config.seed.unwrap_or(0) };
            let (data, t) = synthetic::generate(&spec.config, spec.seed)?;
            truth = t;
            world_spec = Some(spec);
            data
        }
    };
    tracing::info!(
        "read {} interactions, {} users, {} items ({} lines skipped)",
        source.interactions.len(),
        source.users.len(),
        source.items.len(),
        source.skipped_lines
    );
    let dataset = canonicalize(source, format, config)?;
    if dataset.interactions.is_empty() {
        return Err(DataError::invalid(
            config.input.clone().unwrap_or_default(),
            "no interactions left after reading and filtering (check the minimum-interaction filters)",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    dataset.write(out)?;
    if !truth.is_empty() {
        write_truth(&truth_by_user(&dataset, &truth), &out.join(TRUTH_FILE))?;
    }
    if let Some(spec) = world_spec {
        crate::fsutil::write_json(&out.join(synthetic::WORLD_FILE), &spec)?;
    }
    Ok(dataset.stats)
}

/// Filters to the k-core, assigns dense ids in catalogue order and sorts the interactions.
pub fn canonicalize(source: SourceData, format: Format, config: &PrepConfig) -> Result<Dataset> {
    let mut source_sha256 = std::collections::BTreeMap::new();
    for path in &source.files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        source_sha256.insert(name, sha256_file(path)?);
    }
    let (min_u, min_i) = (config.min_user_interactions, config.min_item_interactions);
    let mut keep = vec![true; source.interactions.len()];
    loop {
        let mut user_count = vec![0u32; source.users.len()];
        let mut item_count = vec![0u32; source.items.len()];
        for (x, _) in source.interactions.iter().zip(&keep).filter(|(_, k)| **k) {
            user_count[x.user as usize] += 1;
            item_count[x.item as usize] += 1;
        }
        let mut changed = false;
        for (x, k) in source.interactions.iter().zip(keep.iter_mut()) {
            if *k && (user_count[x.user as usize] < min_u || item_count[x.item as usize] < min_i) {
                *k = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // Dense ids: kept users and items in catalogue order.
    let mut user_map = vec![u32::MAX; source.users.len()];
    let mut item_map = vec![u32::MAX; source.items.len()];
    for (x, _) in source.interactions.iter().zip(&keep).filter(|(_, k)| **k) {
        user_map[x.user as usize] = 0;
        item_map[x.item as usize] = 0;
    }
    let users: Vec<_> = renumber(&mut user_map, source.users.records);
    let mut items: Vec<_> = renumber(&mut item_map, source.items.records);

    let logged = !source.impressions.is_empty();
    let mut impressions = source.impressions.into_iter();
    let (mut interactions, mut shown_lists) = (Vec::new(), Vec::new());
    for (x, kept) in source.interactions.into_iter().zip(keep) {
        let shown = impressions.next();
        if !kept {
            continue;
        }
        if logged {
            // Shown items that did not survive the filters leave the list.
            shown_lists.push(shown.unwrap_or_default().iter().map(|&i| item_map[i as usize]).filter(|&i| i != u32::MAX).collect());
        }
        interactions.push(Interaction {
            user_id: user_map[x.user as usize],
            item_id: item_map[x.item as usize],
            timestamp: x.timestamp,
            rating: x.rating,
            review: x.review,
        });
    }
    let (interactions, impressions) = sorted_by_user_and_time(interactions, logged.then_some(shown_lists));
    for x in &interactions {
        items[x.item_id as usize].popularity += 1;
    }
    let stats = Stats {
        dataset: source.name,
        format: format.name().into(),
        users: users.len() as u64,
        items: items.len() as u64,
        interactions: interactions.len() as u64,
        ratings_present: interactions.iter().filter(|x| x.rating.is_some()).count() as u64,
        reviews_present: interactions.iter().filter(|x| x.review.is_some()).count() as u64,
        catalog_items: source.catalog_items,
        skipped_lines: source.skipped_lines,
        time_kind: source.time_kind,
        source_sha256,
        min_user_interactions: min_u,
        min_item_interactions: min_i,
    };
    Ok(Dataset { users, items, interactions, impressions, stats })
}

/// Keeps the records marked in `map` (0 = kept, MAX = dropped), writing their new ids into it.
fn renumber<T>(map: &mut [u32], records: Vec<T>) -> Vec<T> {
    let mut kept = Vec::new();
    for (slot, record) in map.iter_mut().zip(records) {
        if *slot == 0 {
            *slot = kept.len() as u32;
            kept.push(record);
        }
    }
    kept
}

/// Ground-truth profiles in the dataset's dense user order.
fn truth_by_user(dataset: &Dataset, truth: &[Truth]) -> Vec<Profile> {
    let by_raw: std::collections::HashMap<&str, &Profile> = truth.iter().map(|t| (t.raw_user_id.as_str(), &t.profile)).collect();
    dataset.users.iter().map(|u| by_raw.get(u.raw_id.as_str()).map(|p| (*p).clone()).unwrap_or_default()).collect()
}

fn write_truth(profiles: &[Profile], path: &Path) -> Result<()> {
    pq::write(
        path,
        vec![
            ("user_id", pq::u32_col(0..profiles.len() as u32)),
            ("profile", pq::str_col(profiles.iter().map(Profile::render))),
            ("likes", pq::str_list_col(profiles.iter().map(|p| p.likes.as_slice()))),
            ("dislikes", pq::str_list_col(profiles.iter().map(|p| p.dislikes.as_slice()))),
        ],
    )
}

/// The synthetic world's ground-truth profiles, if `data_dir` holds them, by user id.
pub fn read_truth(data_dir: &Path) -> Result<Option<Vec<Profile>>> {
    let path = data_dir.join(TRUTH_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let t = pq::Table::read(&path)?;
    let (profiles, likes, dislikes) = (t.strings("profile")?, t.string_lists("likes")?, t.string_lists("dislikes")?);
    Ok(Some(
        profiles
            .into_iter()
            .zip(likes.into_iter().zip(dislikes))
            .map(|(text, (likes, dislikes))| {
                let mut p = Profile { likes, dislikes, ..Profile::default() };
                p.demographics = text.lines().find_map(|l| l.strip_prefix("Demographics: ")).map(|d| d.trim_end_matches('.').to_owned());
                p.taste = text.lines().find_map(|l| l.strip_prefix("Taste: ")).map(|d| d.trim_end_matches('.').to_owned());
                p
            })
            .collect(),
    ))
}

/// The synthetic world as a canonical dataset with its ground truth by user id, in memory
/// (tests and benchmarks use it without touching the disk).
pub fn synthetic_dataset(world: &WorldConfig, seed: u64) -> Result<(Dataset, Vec<Profile>)> {
    let (source, truth) = synthetic::generate(world, seed)?;
    let dataset = canonicalize(source, Format::Synthetic, &PrepConfig::default())?;
    let profiles = truth_by_user(&dataset, &truth);
    Ok((dataset, profiles))
}
