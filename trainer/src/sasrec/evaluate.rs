//! Ranking evaluation of next-item prediction under the two protocols the literature uses,
//! always named in the report: `sampled` (the target against 100 random items the user never
//! interacted with) and `full` (against every item outside the user's input history).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use simforge_data::rng::Rng;

use crate::models::sasrec::{SasRec, SequenceBatch};
use crate::sasrec::data::{sample_unseen, sorted_set};
use crate::tensors::host;

/// Negatives per target under the sampled protocol.
pub const SAMPLED_NEGATIVES: usize = 100;
const CUTOFFS_HR: [usize; 4] = [1, 5, 10, 20];
const CUTOFFS_NDCG: [usize; 3] = [5, 10, 20];
const USERS_PER_BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The target against 100 sampled items the user never interacted with.
    #[default]
    Sampled,
    /// The target against every item outside the user's input history.
    Full,
}

/// One prediction to rank: the model reads `input` and should put `target` first.
pub struct Case<'a> {
    pub input: &'a [u32],
    pub target: u32,
    /// Everything the user ever interacted with (sampled negatives avoid these).
    pub history: &'a [u32],
}

/// `report.json` of `simforge eval sasrec`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RankingReport {
    pub protocol: Protocol,
    pub users: usize,
    /// `hr@1`, `hr@5`, `hr@10`, `hr@20`, `ndcg@5`, `ndcg@10`, `ndcg@20`, `mrr`.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

impl RankingReport {
    pub fn get(&self, metric: &str) -> f64 {
        self.metrics.get(metric).copied().unwrap_or(f64::NAN)
    }
}

/// At most `max_users` of `cases` (a seeded sample when there are more, in their original order).
pub fn sample_cases<T>(mut cases: Vec<T>, max_users: usize, seed: u64) -> Vec<T> {
    if max_users == 0 || cases.len() <= max_users {
        return cases;
    }
    let mut keep: Vec<usize> = (0..cases.len()).collect();
    Rng::stream(seed, "eval-users", 0).shuffle(&mut keep);
    keep.truncate(max_users);
    keep.sort_unstable();
    let mut taken = vec![false; cases.len()];
    for &i in &keep {
        taken[i] = true;
    }
    let mut i = 0;
    cases.retain(|_| {
        let t = taken[i];
        i += 1;
        t
    });
    cases
}

/// Scores next items after input sequences: SASRec, or a baseline such as [`Popularity`].
pub trait NextItemScorer {
    /// Scores of `candidates[r]` (item indices) after `inputs[r]`.
    fn score_candidates(&self, inputs: &[&[u32]], candidates: &[Vec<u32>]) -> Vec<Vec<f32>>;
    /// Scores of every item index (0 = padding) after each input.
    fn score_every_item(&self, inputs: &[&[u32]]) -> Vec<Vec<f32>>;
}

impl NextItemScorer for SasRec {
    fn score_candidates(&self, inputs: &[&[u32]], candidates: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let hidden = self.last_hidden(&SequenceBatch::new(inputs, self.max_len()));
        let width = candidates.first().map_or(0, Vec::len);
        host(self.score(hidden, candidates).reshape([inputs.len() * width])).chunks(width.max(1)).map(<[f32]>::to_vec).collect()
    }

    fn score_every_item(&self, inputs: &[&[u32]]) -> Vec<Vec<f32>> {
        let hidden = self.last_hidden(&SequenceBatch::new(inputs, self.max_len()));
        let width = self.item_embedding.val().dims()[0];
        host(self.score_all(hidden).reshape([inputs.len() * width])).chunks(width).map(<[f32]>::to_vec).collect()
    }
}

/// The most-popular baseline: an item's score is its count in the training sequences.
pub struct Popularity(pub Vec<f32>);

impl Popularity {
    pub fn new(train: &[&[u32]], num_items: usize) -> Self {
        let mut counts = vec![0.0f32; num_items + 1];
        for &item in train.iter().copied().flatten() {
            counts[item as usize] += 1.0;
        }
        Self(counts)
    }
}

impl NextItemScorer for Popularity {
    fn score_candidates(&self, _inputs: &[&[u32]], candidates: &[Vec<u32>]) -> Vec<Vec<f32>> {
        candidates.iter().map(|row| row.iter().map(|&i| self.0[i as usize]).collect()).collect()
    }

    fn score_every_item(&self, inputs: &[&[u32]]) -> Vec<Vec<f32>> {
        vec![self.0.clone(); inputs.len()]
    }
}

/// Ranks every case's target under `protocol`. The rank counts candidates scored above the
/// target plus half of those tied with it, so a constant scorer earns no credit; a score that is
/// not finite always counts against the target (a diverged model scores nothing, never everything).
pub fn evaluate(scorer: &impl NextItemScorer, cases: &[Case], protocol: Protocol, num_items: usize, seed: u64) -> RankingReport {
    let mut ranks = Vec::with_capacity(cases.len());
    for (b, chunk) in cases.chunks(USERS_PER_BATCH).enumerate() {
        let inputs: Vec<&[u32]> = chunk.iter().map(|c| c.input).collect();
        match protocol {
            Protocol::Sampled => {
                let candidates: Vec<Vec<u32>> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, case)| {
                        let mut rng = Rng::stream(seed, "sampled-negatives", (b * USERS_PER_BATCH + i) as u64);
                        // Distinct negatives while unseen items last (tiny catalogues repeat).
                        let mut seen = sorted_set(case.history);
                        let mut row = vec![case.target];
                        for _ in 0..SAMPLED_NEGATIVES {
                            let item = sample_unseen(&mut rng, num_items, &seen);
                            row.push(item);
                            let at = seen.partition_point(|&s| s < item);
                            seen.insert(at, item);
                        }
                        row
                    })
                    .collect();
                for row in scorer.score_candidates(&inputs, &candidates) {
                    ranks.push(rank_of(row[0], row[1..].iter().copied()));
                }
            }
            Protocol::Full => {
                for (case, row) in chunk.iter().zip(scorer.score_every_item(&inputs)) {
                    let excluded = sorted_set(case.input);
                    let target = row[case.target as usize];
                    let others = row
                        .iter()
                        .enumerate()
                        .skip(1)
                        .filter(|&(item, _)| item != case.target as usize && excluded.binary_search(&(item as u32)).is_err())
                        .map(|(_, &score)| score);
                    ranks.push(rank_of(target, others));
                }
            }
        }
    }
    RankingReport { protocol, users: ranks.len(), metrics: metrics(&ranks) }
}

/// The 0-based rank of `target` among `others`: those above it, plus half of those tied. A
/// non-finite target ranks last, and a non-finite other counts as above it.
fn rank_of(target: f32, others: impl Iterator<Item = f32>) -> usize {
    let (mut above, mut tied) = (0usize, 0usize);
    for score in others {
        if !target.is_finite() || !score.is_finite() || score > target {
            above += 1;
        } else if score == target {
            tied += 1;
        }
    }
    above + tied / 2
}

/// Hit rate, NDCG and MRR over 0-based ranks.
pub fn metrics(ranks: &[usize]) -> BTreeMap<String, f64> {
    let n = ranks.len().max(1) as f64;
    let mut out = BTreeMap::new();
    for k in CUTOFFS_HR {
        out.insert(format!("hr@{k}"), ranks.iter().filter(|&&r| r < k).count() as f64 / n);
    }
    for k in CUTOFFS_NDCG {
        out.insert(format!("ndcg@{k}"), ranks.iter().filter(|&&r| r < k).map(|&r| 1.0 / (r as f64 + 2.0).log2()).sum::<f64>() / n);
    }
    out.insert("mrr".into(), ranks.iter().map(|&r| 1.0 / (r as f64 + 1.0)).sum::<f64>() / n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_known_ranks() {
        let m = metrics(&[0, 4, 9, 30]);
        assert_eq!(m["hr@1"], 0.25);
        assert_eq!(m["hr@5"], 0.5);
        assert_eq!(m["hr@10"], 0.75);
        assert_eq!(m["hr@20"], 0.75);
        let ndcg10 = (1.0 + 1.0 / 6f64.log2() + 1.0 / 11f64.log2()) / 4.0;
        assert!((m["ndcg@10"] - ndcg10).abs() < 1e-12);
        assert!((m["mrr"] - (1.0 + 0.2 + 0.1 + 1.0 / 31.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn ties_count_half() {
        assert_eq!(rank_of(1.0, [1.0, 1.0, 1.0, 1.0].into_iter()), 2);
        assert_eq!(rank_of(1.0, [2.0, 0.0].into_iter()), 1);
        // A diverged model (NaN scores) ranks its targets last, not first.
        assert_eq!(rank_of(f32::NAN, [f32::NAN, f32::NAN, 0.5].into_iter()), 3);
        assert_eq!(rank_of(0.5, [f32::NAN, 0.1].into_iter()), 1);
        assert_eq!(metrics(&[3, 3])["hr@1"], 0.0);
    }

    #[test]
    fn sampling_users_keeps_order_and_is_seeded() {
        let a = sample_cases((0..100).collect(), 10, 7);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, sample_cases((0..100).collect(), 10, 7));
        assert_ne!(a, sample_cases((0..100).collect(), 10, 8));
    }
}
