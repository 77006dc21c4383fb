//! Shortcuts: how often a rule that reads only item metadata (release year, popularity, title
//! length, co-occurrence with the history) picks a scene's real choice. A scene set where such
//! a rule beats random by more than noise leaks its answer through its construction, and a
//! model trained on it can learn the rule instead of the user; `scenes.json` reports these
//! rates for the evaluation scenes of every dataset.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenes::Scene;
use crate::tables::Item;

/// The rules' accuracy on a set of scenes, beside random choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShortcutReport {
    pub scenes: usize,
    /// Mean of 1/k: what guessing gets.
    pub random: f64,
    /// One standard error of an accuracy near `random` on this many scenes.
    pub standard_error: f64,
    /// Expected accuracy of each rule (ties broken uniformly at random).
    pub rules: BTreeMap<String, f64>,
}

impl ShortcutReport {
    /// The rules more than `errors` standard errors above random.
    pub fn leaks(&self, errors: f64) -> Vec<(&str, f64)> {
        self.rules.iter().filter(|(_, &a)| a > self.random + errors * self.standard_error).map(|(r, &a)| (r.as_str(), a)).collect()
    }
}

/// Each rule scores an option; the rule picks the highest score.
type Rule = (&'static str, fn(&Item, usize) -> f64);

const RULES: [Rule; 8] = [
    ("newest", |i, _| f64::from(i.year.unwrap_or(0))),
    ("oldest", |i, _| -f64::from(i.year.unwrap_or(0))),
    ("most_popular", |i, _| f64::from(i.popularity)),
    ("least_popular", |i, _| -f64::from(i.popularity)),
    ("longest_title", |i, _| i.title.len() as f64),
    ("shortest_title", |i, _| -(i.title.len() as f64)),
    ("most_cooccurring", |_, links| links as f64),
    ("least_cooccurring", |_, links| -(links as f64)),
];

/// The rules on `scenes`; `neighbours[i]` are the items that most often occur near item `i`
/// in users' sequences (an option's co-occurrence is how many history items list it).
pub fn shortcut_report<'a>(items: &[Item], neighbours: &[Vec<u32>], scenes: impl Iterator<Item = &'a Scene>) -> ShortcutReport {
    let mut report = ShortcutReport::default();
    let mut hits = [0.0f64; RULES.len()];
    for scene in scenes {
        report.scenes += 1;
        report.random += 1.0 / scene.exposure.len() as f64;
        let links = |option: u32| scene.history_items.iter().filter(|&&h| neighbours.get(h as usize).is_some_and(|n| n.contains(&option))).count();
        for (r, (_, score)) in RULES.iter().enumerate() {
            let scores: Vec<f64> = scene.exposure.iter().map(|&o| score(&items[o as usize], links(o))).collect();
            let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let tied = scores.iter().filter(|&&s| s == best).count();
            if scores[scene.target_pos as usize] == best {
                hits[r] += 1.0 / tied as f64;
            }
        }
    }
    let n = report.scenes.max(1) as f64;
    report.random /= n;
    report.standard_error = (report.random * (1.0 - report.random) / n).sqrt();
    report.rules = RULES.iter().zip(hits).map(|((name, _), h)| (name.to_string(), h / n)).collect();
    report
}
