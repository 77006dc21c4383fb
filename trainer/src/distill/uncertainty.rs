//! Uncertainty of sampled decisions and the selection of distillation data (METHODS.md
//! section 4, steps 3–7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use simforge_data::rng::Rng;

use crate::distill::teacher::Decision;

/// Shannon entropy (nats) of a distribution.
pub fn entropy(p: &[f32]) -> f64 {
    p.iter().map(|&x| f64::from(x)).filter(|&x| x > 0.0).map(|x| -x * x.ln()).sum()
}

/// One model's uncertainty on one scene, over its sampled decisions D.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Uncertainty {
    /// E_D[H(P(Y | X ⊕ D))]: how unsure the model stays after its own reasoning.
    pub expected_entropy: f64,
    /// H(E_D[P(Y | X ⊕ D)]).
    pub total_entropy: f64,
    /// Total − expected: how much the decisions disagree.
    pub mutual_information: f64,
    /// Share of decisions whose sampled option is the real choice.
    pub hit_rate: f64,
}

pub fn uncertainty(decisions: &[Decision], target: usize) -> Uncertainty {
    if decisions.is_empty() {
        return Uncertainty::default();
    }
    let n = decisions.len() as f64;
    let expected_entropy = decisions.iter().map(|d| entropy(&d.letters)).sum::<f64>() / n;
    let total_entropy = entropy(&mean_distribution(decisions));
    Uncertainty {
        expected_entropy,
        total_entropy,
        mutual_information: total_entropy - expected_entropy,
        hit_rate: decisions.iter().filter(|d| d.sampled == target).count() as f64 / n,
    }
}

/// E_D[P(Y | X ⊕ D)]: the decisions' distributions over the options, averaged.
pub fn mean_distribution(decisions: &[Decision]) -> Vec<f32> {
    let width = decisions.first().map_or(0, |d| d.letters.len());
    let n = decisions.len().max(1) as f64;
    (0..width).map(|k| (decisions.iter().map(|d| f64::from(d.letters[k])).sum::<f64>() / n) as f32).collect()
}

/// Whose decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Teacher,
    Student,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Teacher => "teacher",
            Self::Student => "student",
        }
    }
}

/// A preference pair of one scene: indices into the teacher's and the given role's decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub chosen: usize,
    pub rejected: (Role, usize),
}

/// Chosen: the lowest-entropy teacher decision that picked the real choice. Rejected: the
/// lowest-entropy decision of either model that did not. `None` when either is missing.
pub fn pair(teacher: &[Decision], student: &[Decision], target: usize) -> Option<Pair> {
    let all = teacher.iter().enumerate().map(|(i, d)| (Role::Teacher, i, d)).chain(student.iter().enumerate().map(|(i, d)| (Role::Student, i, d)));
    let surest = |a: &(Role, usize, &Decision), b: &(Role, usize, &Decision)| entropy(&a.2.letters).total_cmp(&entropy(&b.2.letters));
    let chosen = all.clone().filter(|(r, _, d)| *r == Role::Teacher && d.sampled == target).min_by(surest)?;
    let rejected = all.filter(|(_, _, d)| d.sampled != target).min_by(surest)?;
    Some(Pair { chosen: chosen.1, rejected: (rejected.0, rejected.1) })
}

/// How the kept scenes are picked among those with pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectionMode {
    /// The largest teacher–student uncertainty gaps (the method).
    #[default]
    Gap,
    /// Uniformly at random, at the same size and strata (the ablation).
    Random,
}

/// A scene that can be selected.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub scene_id: u32,
    pub dataset: String,
    pub choices: usize,
    /// Student expected entropy − teacher expected entropy.
    pub gap: f64,
}

/// Up to `top_k` candidates (their indices), stratified by dataset and list length: each
/// stratum keeps its share of `top_k` (largest remainders round), by gap or at random.
pub fn select(candidates: &[Candidate], top_k: usize, mode: SelectionMode, seed: u64) -> Vec<usize> {
    let mut strata: BTreeMap<(&str, usize), Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        strata.entry((c.dataset.as_str(), c.choices)).or_default().push(i);
    }
    let total = candidates.len();
    let keep = top_k.min(total);
    // Quotas: floor of each share, then the largest remainders get one more.
    let mut quotas: Vec<(usize, f64)> = strata
        .values()
        .map(|m| {
            let share = keep as f64 * m.len() as f64 / total.max(1) as f64;
            (share.floor() as usize, share - share.floor())
        })
        .collect();
    let short = keep - quotas.iter().map(|q| q.0).sum::<usize>();
    let mut order: Vec<usize> = (0..quotas.len()).collect();
    order.sort_by(|&a, &b| quotas[b].1.total_cmp(&quotas[a].1).then(a.cmp(&b)));
    for &s in order.iter().take(short) {
        quotas[s].0 += 1;
    }
    let mut rng = Rng::stream(seed, "selection", 0);
    let mut kept = Vec::with_capacity(keep);
    for (members, (quota, _)) in strata.into_values().zip(quotas) {
        let mut members = members;
        match mode {
            SelectionMode::Gap => {
                members.sort_by(|&a, &b| candidates[b].gap.total_cmp(&candidates[a].gap).then(candidates[a].scene_id.cmp(&candidates[b].scene_id)))
            }
            SelectionMode::Random => rng.shuffle(&mut members),
        }
        kept.extend_from_slice(&members[..quota]);
    }
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(letters: &[f32], sampled: usize) -> Decision {
        Decision { text: String::new(), letters: letters.to_vec(), sampled }
    }

    #[test]
    fn entropies_of_agreeing_and_disagreeing_decisions() {
        let ln2 = std::f64::consts::LN_2;
        // Two confident decisions that disagree: no expected entropy, all of it mutual.
        let u = uncertainty(&[decision(&[1.0, 0.0], 0), decision(&[0.0, 1.0], 1)], 0);
        assert!(u.expected_entropy.abs() < 1e-12 && (u.total_entropy - ln2).abs() < 1e-9 && (u.mutual_information - ln2).abs() < 1e-9);
        assert_eq!(u.hit_rate, 0.5);
        // Two unsure decisions that agree: all expected, none mutual.
        let u = uncertainty(&[decision(&[0.5, 0.5], 0), decision(&[0.5, 0.5], 0)], 1);
        assert!((u.expected_entropy - ln2).abs() < 1e-9 && u.mutual_information.abs() < 1e-9 && u.hit_rate == 0.0);
    }

    #[test]
    fn pairs_take_the_surest_right_teacher_and_surest_wrong_decision() {
        let teacher = [decision(&[0.6, 0.4], 0), decision(&[0.9, 0.1], 0), decision(&[0.2, 0.8], 1)];
        let student = [decision(&[0.05, 0.95], 1)];
        assert_eq!(pair(&teacher, &student, 0), Some(Pair { chosen: 1, rejected: (Role::Student, 0) }));
        assert_eq!(pair(&teacher, &[], 0), Some(Pair { chosen: 1, rejected: (Role::Teacher, 2) }));
        assert_eq!(pair(&teacher[2..], &student, 0), None, "no right teacher decision");
        assert_eq!(pair(&teacher[..2], &[], 0), None, "no wrong decision");
    }

    #[test]
    fn selection_keeps_strata_shares_and_the_largest_gaps() {
        let candidates: Vec<Candidate> =
            (0..10).map(|i| Candidate { scene_id: i, dataset: if i < 8 { "a".into() } else { "b".into() }, choices: 5, gap: f64::from(i) }).collect();
        let kept = select(&candidates, 5, SelectionMode::Gap, 0);
        // a holds 8/10 → 4 places, its largest gaps 4..=7; b 2/10 → 1 place, gap 9.
        assert_eq!(kept, vec![4, 5, 6, 7, 9]);
        let random = select(&candidates, 5, SelectionMode::Random, 0);
        assert_eq!(random.len(), 5);
        assert_eq!(random.iter().filter(|&&i| i >= 8).count(), 1);
        assert_eq!(select(&candidates, 50, SelectionMode::Gap, 0).len(), 10);
    }
}
