//! Behavioural fidelity (METHODS.md section 7): how much a simulator's choices and texts look
//! like the real users' own. Each metric is computed the same way for a simulator and for the
//! human baseline, so a report can put them side by side. Entropies are in bits. A metric over
//! nothing is `None`, never 0: an empty sample says nothing about a simulator.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Shannon entropy, in bits, of the distribution that `counts` describe.
pub fn entropy(counts: impl IntoIterator<Item = usize>) -> Option<f64> {
    let counts: Vec<usize> = counts.into_iter().filter(|&c| c > 0).collect();
    let total: usize = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let total = total as f64;
    Some(counts.iter().map(|&c| c as f64 / total).map(|p| -p * p.log2()).sum::<f64>().max(0.0))
}

/// Entropy of how often each distinct value occurs: item entropy over chosen items, or over
/// their genres, eras or regions (one value per choice, or several for a multi-genre item).
pub fn value_entropy<T: Eq + Hash>(values: impl IntoIterator<Item = T>) -> Option<f64> {
    let mut counts: HashMap<T, usize> = HashMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    entropy(counts.into_values())
}

/// Pearson's r between two paired samples (BinPref: a simulator's acceptance, 0 or 1, against
/// the real rating of the same user-item pair). `None` with fewer than two pairs, unequal
/// lengths, a constant side or a non-finite value.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 2 || xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return None;
    }
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Share of decisions that accept (positive bias: simulators tend to accept nearly everything).
pub fn acceptance_rate(accepted: &[bool]) -> Option<f64> {
    (!accepted.is_empty()).then(|| accepted.iter().filter(|a| **a).count() as f64 / accepted.len() as f64)
}

/// Mean popularity percentile of `items` in the catalogue: 0 for the least interacted-with
/// item, 1 for the most, tied items sharing their mid rank. `popularity[i]` is item i's count;
/// items outside the catalogue are skipped.
pub fn popularity_percentile(items: &[u32], popularity: &[u64]) -> Option<f64> {
    if popularity.len() < 2 {
        return None;
    }
    let mut order: Vec<usize> = (0..popularity.len()).collect();
    order.sort_by_key(|&i| popularity[i]);
    let mut percentile = vec![0.0; popularity.len()];
    let mut start = 0;
    while start < order.len() {
        let end = start + order[start..].iter().take_while(|&&i| popularity[i] == popularity[order[start]]).count();
        let mid_rank = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            percentile[i] = mid_rank / (popularity.len() - 1) as f64;
        }
        start = end;
    }
    let known: Vec<f64> = items.iter().filter_map(|&i| percentile.get(i as usize).copied()).collect();
    (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
}

/// Share of `texts` that quote a title of their own user's history verbatim (case-insensitive;
/// a trailing release year such as " (1995)" is not needed, and titles shorter than 4
/// characters are ignored, since they match ordinary words). `histories[i]` are text i's titles.
pub fn leakage_rate(texts: &[&str], histories: &[Vec<&str>]) -> Option<f64> {
    if texts.is_empty() || texts.len() != histories.len() {
        return None;
    }
    let leaks = texts
        .iter()
        .zip(histories)
        .filter(|(text, titles)| {
            let text = text.to_lowercase();
            titles.iter().map(|t| bare_title(t).to_lowercase()).any(|t| t.chars().count() >= 4 && text.contains(&t))
        })
        .count();
    Some(leaks as f64 / texts.len() as f64)
}

/// "Toy Story (1995)" → "Toy Story".
fn bare_title(title: &str) -> &str {
    let t = title.trim();
    match t.rfind(" (") {
        Some(i) if t.ends_with(')') && t[i + 2..t.len() - 1].chars().all(|c| c.is_ascii_digit()) => &t[..i],
        _ => t,
    }
}

/// Lower-case word tokens (letters, digits and apostrophes).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Distinct words over all words of all texts.
pub fn type_token_ratio(texts: &[&str]) -> Option<f64> {
    let all: Vec<String> = texts.iter().flat_map(|t| words(t)).collect();
    (!all.is_empty()).then(|| all.iter().collect::<HashSet<_>>().len() as f64 / all.len() as f64)
}

/// distinct-n: distinct word n-grams over all word n-grams of the texts (n-grams do not cross
/// texts).
pub fn distinct_n(texts: &[&str], n: usize) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let grams: Vec<Vec<String>> = texts.iter().flat_map(|t| words(t).windows(n).map(<[String]>::to_vec).collect::<Vec<_>>()).collect();
    (!grams.is_empty()).then(|| grams.iter().collect::<HashSet<_>>().len() as f64 / grams.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn entropy_is_in_bits_and_ignores_empty_bins() {
        assert!(close(entropy([5, 5]), 1.0));
        assert!(close(entropy([1, 1, 1, 1, 0]), 2.0));
        assert!(close(entropy([7]), 0.0));
        // p = (1/2, 1/4, 1/4): 1/2·1 + 2·1/4·2 = 1.5 bits.
        assert!(close(entropy([2, 1, 1]), 1.5));
        assert_eq!(entropy([0, 0]), None);
        assert!(close(value_entropy(["Drama", "Comedy", "Drama", "Horror"]), 1.5));
        assert_eq!(value_entropy(Vec::<u32>::new()), None);
    }

    #[test]
    fn pearson_matches_hand_computed_cases() {
        assert!(close(pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), 1.0));
        assert!(close(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0));
        // Accept (1) / reject (0) against ratings 5, 4, 2, 1: deviations (±0.5) and (2, 1, −1, −2),
        // Σdx·dy = 3, Σdx² = 1, Σdy² = 10, so r = 3/√10.
        let r = pearson(&[1.0, 1.0, 0.0, 0.0], &[5.0, 4.0, 2.0, 1.0]).expect("r");
        assert!((r - 3.0 / 10f64.sqrt()).abs() < 1e-12, "{r}");
        assert_eq!(pearson(&[1.0, 1.0], &[2.0, 3.0]), None, "a constant side has no correlation");
        assert_eq!(pearson(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[1.0, f64::NAN], &[2.0, 3.0]), None);
    }

    #[test]
    fn acceptance_and_popularity_percentiles() {
        assert!(close(acceptance_rate(&[true, false, true, true]), 0.75));
        assert_eq!(acceptance_rate(&[]), None);
        // Counts 10, 0, 5, 5: ranks 3, 0, 1.5, 1.5 of 3.
        let popularity = [10, 0, 5, 5];
        assert!(close(popularity_percentile(&[0], &popularity), 1.0));
        assert!(close(popularity_percentile(&[1], &popularity), 0.0));
        assert!(close(popularity_percentile(&[2, 3], &popularity), 0.5));
        assert!(close(popularity_percentile(&[0, 1, 9], &popularity), 0.5), "an unknown item is skipped");
        assert_eq!(popularity_percentile(&[9], &popularity), None);
    }

    #[test]
    fn leakage_counts_texts_quoting_their_own_history() {
        let texts = ["I loved Toy Story as a kid", "Something with robots, please", "More like THE MATRIX", "it was ok"];
        let histories = vec![vec!["Toy Story (1995)"], vec!["Heat (1995)"], vec!["Heat (1995)"], vec!["It (2017)"]];
        // Text 1 quotes its history; text 3 quotes a title that is not its user's; "It" is too short.
        assert!(close(leakage_rate(&texts, &histories), 0.25));
        assert_eq!(bare_title("Se7en (1995)"), "Se7en");
        assert_eq!(bare_title("Ocean's Eleven (Remake)"), "Ocean's Eleven (Remake)");
        assert_eq!(leakage_rate(&texts, &histories[..2]), None);
    }

    #[test]
    fn lexical_diversity_matches_hand_counts() {
        let texts = ["The plot was good, the cast was good.", "Good cast"];
        // Words: the plot was good the cast was good | good cast → 10 tokens, 5 types.
        assert!(close(type_token_ratio(&texts), 0.5));
        // Unigrams: as above. Bigrams: the-plot plot-was was-good good-the the-cast cast-was was-good | good-cast → 8, 7 distinct.
        assert!(close(distinct_n(&texts, 1), 0.5));
        assert!(close(distinct_n(&texts, 2), 7.0 / 8.0));
        assert_eq!(distinct_n(&["one"], 2), None);
        assert_eq!(type_token_ratio(&[]), None);
    }
}
