//! `simforge split`: DGDPO's per-user chronological split (METHODS.md section 5): the last
//! `test_frac` of a user's history (at least 2 items) is the held-out test part; of the rest,
//! the first `alpha` is D_ini and the remainder D_opt.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::write_json;
use crate::parquet_io as pq;
use crate::tables::Dataset;

pub const SPLIT_FILE: &str = "split.parquet";

/// `simforge split` options (a recipe's `[split]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Share of the non-test history that forms D_ini (0 < alpha < 1).
    pub alpha: f64,
    /// Share of each history held out as the test part (at least `min_test` items).
    pub test_frac: f64,
    /// Fewest test items per user.
    pub min_test: usize,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { alpha: 0.6, test_frac: 0.2, min_test: 2 }
    }
}

/// Which part of the split an interaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// D_ini: builds the initial profile.
    Initial,
    /// D_opt: traversed by the optimisation loop.
    Optimise,
    /// Held out, never seen while optimising.
    Test,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Initial => "initial",
            Part::Optimise => "optimise",
            Part::Test => "test",
        }
    }
}

/// The parts of one history of `n` interactions, or `None` when it is too short to split.
pub fn parts(n: usize, config: &SplitConfig) -> Option<Vec<Part>> {
    let test = ((config.test_frac * n as f64).ceil() as usize).max(config.min_test);
    let rest = n.checked_sub(test)?;
    if rest < 2 {
        return None;
    }
    let initial = ((config.alpha * rest as f64).round() as usize).clamp(1, rest - 1);
    let mut v = vec![Part::Initial; initial];
    v.resize(rest, Part::Optimise);
    v.resize(n, Part::Test);
    Some(v)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SplitStats {
    pub users: usize,
    pub users_too_short: usize,
    pub initial: usize,
    pub optimise: usize,
    pub test: usize,
    pub config: SplitConfig,
}

pub fn split(data_dir: &Path, out: &Path, config: &SplitConfig) -> Result<SplitStats> {
    if !(config.alpha > 0.0 && config.alpha < 1.0 && config.test_frac > 0.0 && config.test_frac < 1.0) {
        return Err(DataError::config("split", "alpha and test-frac must lie strictly between 0 and 1"));
    }
    let dataset = Dataset::load(data_dir)?;
    let mut rows: Vec<(u32, u32, i64, u32, Part)> = Vec::new();
    let mut stats = SplitStats { users: 0, users_too_short: 0, initial: 0, optimise: 0, test: 0, config: config.clone() };
    for history in dataset.by_user() {
        let Some(parts) = parts(history.len(), config) else {
            stats.users_too_short += usize::from(!history.is_empty());
            continue;
        };
        stats.users += 1;
        for (position, (x, part)) in history.iter().zip(parts).enumerate() {
            match part {
                Part::Initial => stats.initial += 1,
                Part::Optimise => stats.optimise += 1,
                Part::Test => stats.test += 1,
            }
            rows.push((x.user_id, x.item_id, x.timestamp, position as u32, part));
        }
    }
    pq::write(
        &out.join(SPLIT_FILE),
        vec![
            ("user_id", pq::u32_col(rows.iter().map(|r| r.0))),
            ("item_id", pq::u32_col(rows.iter().map(|r| r.1))),
            ("timestamp", pq::i64_col(rows.iter().map(|r| r.2))),
            ("position", pq::u32_col(rows.iter().map(|r| r.3))),
            ("part", pq::str_col(rows.iter().map(|r| r.4.name()))),
        ],
    )?;
    write_json(&out.join("split.json"), &stats)?;
    Ok(stats)
}

/// Per user id, the part of each interaction in history order; `None` for users not split.
/// Every row must name the interaction at its position in `dataset` (a split made from
/// another dataset is refused, not misread).
pub fn read_split(dir: &Path, dataset: &Dataset) -> Result<Vec<Option<Vec<Part>>>> {
    let path = dir.join(SPLIT_FILE);
    let t = pq::Table::read(&path)?;
    let (users, items, times, positions) = (t.u32s("user_id")?, t.u32s("item_id")?, t.i64s("timestamp")?, t.u32s("position")?);
    let names = t.strings("part")?;
    let by_user = dataset.by_user();
    let mut out: Vec<Option<Vec<Part>>> = vec![None; by_user.len()];
    for (row, name) in names.iter().enumerate() {
        let part = match name.as_str() {
            "initial" => Part::Initial,
            "optimise" => Part::Optimise,
            "test" => Part::Test,
            other => return Err(DataError::invalid(&path, format!("record {row}: unknown part {other:?}"))),
        };
        let parts = out.get_mut(users[row] as usize).map(|p| p.get_or_insert_with(Vec::new));
        let interaction = by_user.get(users[row] as usize).and_then(|h| h.get(positions[row] as usize));
        match (parts, interaction) {
            (Some(parts), Some(x)) if parts.len() == positions[row] as usize && x.item_id == items[row] && x.timestamp == times[row] => parts.push(part),
            _ => {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "record {row}: user {} item {} at position {} is not this dataset's interaction; was the split made from another dataset?",
                        users[row], items[row], positions[row]
                    ),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_alpha_and_test_share() {
        let c = SplitConfig::default();
        let p = parts(20, &c).expect("long enough");
        let count = |k| p.iter().filter(|x| **x == k).count();
        assert_eq!((count(Part::Initial), count(Part::Optimise), count(Part::Test)), (10, 6, 4));
        assert_eq!(p[0], Part::Initial);
        assert_eq!(p[19], Part::Test);
        let short = parts(5, &c).expect("5 splits");
        assert_eq!(short.iter().filter(|x| **x == Part::Test).count(), 2);
        assert!(parts(3, &c).is_none());
    }
}
