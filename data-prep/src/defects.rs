//! `simforge defects`: synthetic diagnostic samples (METHODS.md section 5). A good profile
//! gets an injected defect (Inaccurate: a liked category stated as disliked; Incomplete: a
//! liked category the case depends on deleted; Both), and the rule chooser run with the
//! defective profile produces a discrepancy case that the good profile would have got right.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chooser::RuleChooser;
use crate::diagnosis::DiscrepancyCase;
use crate::error::{DataError, Result};
use crate::fsutil::write_json;
use crate::parquet_io as pq;
use crate::prep::read_truth;
use crate::profile::Profile;
use crate::profiles::{read_profiles, ProfileContext, ProfilesConfig};
use crate::rng::Rng;
use crate::scenes::{unseen_items, Rendering};
use crate::tables::{Dataset, Interaction, Item, Split};

pub const DEFECTS_FILE: &str = "defects.parquet";

/// The three diagnostic labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefectKind {
    /// The profile states something the user contradicts.
    Inaccurate,
    /// The profile lacks a preference that explains the choice.
    Incomplete,
    /// Both at once.
    Both,
}

impl DefectKind {
    pub const ALL: [DefectKind; 3] = [DefectKind::Inaccurate, DefectKind::Incomplete, DefectKind::Both];

    pub fn name(self) -> &'static str {
        match self {
            DefectKind::Inaccurate => "inaccurate",
            DefectKind::Incomplete => "incomplete",
            DefectKind::Both => "both",
        }
    }

    /// The label as a diagnosis writes it.
    pub fn title(self) -> &'static str {
        match self {
            DefectKind::Inaccurate => "Inaccurate",
            DefectKind::Incomplete => "Incomplete",
            DefectKind::Both => "Both",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its place in [`DefectKind::ALL`] (and in a diagnoser's label distribution).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// `simforge defects` options (a recipe's `[defects]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DefectsConfig {
    /// Samples per class (the classes are kept balanced: fewer if the data allows fewer).
    pub per_class: usize,
    /// Candidate items shown in a case (≥ 2).
    pub candidates: usize,
    /// Share of users whose samples form the held-out evaluation split.
    pub eval_frac: f64,
    /// History items quoted in a case.
    pub recent: usize,
    /// How the `case` column is written: usermirrorer or compact (few tokens, for small
    /// models); a diagnostic model trained on it is asked in the same rendering.
    pub rendering: Rendering,
    /// Seed for every random choice.
    pub seed: Option<u64>,
}

impl Default for DefectsConfig {
    fn default() -> Self {
        Self { per_class: 200, candidates: 5, eval_frac: 0.2, recent: 5, rendering: Rendering::Usermirrorer, seed: None }
    }
}

/// One diagnostic sample.
#[derive(Debug, Clone)]
pub struct DefectSample {
    /// How many likes and dislikes the defective profile states: its surface, which every
    /// class shares in the same proportions.
    pub shape: (usize, usize),
    pub user_id: u32,
    pub split: Split,
    pub label: DefectKind,
    pub profile: String,
    pub good_profile: String,
    pub edit: String,
    pub candidate_items: Vec<u32>,
    pub candidates: Vec<String>,
    pub simulated_choice: u32,
    pub real_choice: u32,
    pub history: String,
    pub history_items: Vec<u32>,
    pub case: String,
}

#[derive(Debug, Serialize)]
pub struct DefectsStats {
    pub per_class: usize,
    pub train: usize,
    pub eval: usize,
    pub users: usize,
    pub available: [usize; 3],
}

/// Applies a defect to a good profile; `None` when the profile has too few likes for it.
fn inject(good: &Profile, kind: DefectKind, rng: &mut Rng) -> Option<(Profile, String, Vec<String>)> {
    let mut p = good.clone();
    let need = if kind == DefectKind::Both { 2 } else { 1 };
    if p.likes.len() < need {
        return None;
    }
    let first = p.likes.remove(rng.below(p.likes.len()));
    Some(match kind {
        DefectKind::Inaccurate => {
            p.dislikes.push(first.clone());
            (p, format!("flipped liked category {first:?} to disliked"), vec![first])
        }
        DefectKind::Incomplete => (p, format!("removed liked category {first:?}"), vec![first]),
        DefectKind::Both => {
            let second = p.likes.remove(rng.below(p.likes.len()));
            p.dislikes.push(first.clone());
            (p, format!("flipped liked category {first:?} to disliked; removed liked category {second:?}"), vec![first, second])
        }
    })
}

/// Looks for a case the defect breaks: a real item touching an edited category that the good
/// profile picks and the defective profile does not.
#[allow(clippy::too_many_arguments)]
fn find_case(
    rng: &mut Rng,
    items: &[Item],
    history: &[Interaction],
    consumed: &[u32],
    good: &RuleChooser,
    bad: &RuleChooser,
    edited: &[String],
    config: &DefectsConfig,
) -> Option<(usize, Vec<u32>, usize, usize)> {
    let relevant: Vec<usize> = (0..history.len()).filter(|&i| items[history[i].item_id as usize].categories.iter().any(|c| edited.contains(c))).collect();
    if relevant.is_empty() {
        return None;
    }
    for _ in 0..30 {
        let at = relevant[rng.below(relevant.len())];
        let real = history[at].item_id;
        let mut candidates = vec![real];
        candidates.extend(unseen_items(rng, consumed, items.len(), config.candidates - 1));
        rng.shuffle(&mut candidates);
        let real_pos = candidates.iter().position(|&c| c == real)?;
        let shown: Vec<&Item> = candidates.iter().map(|&c| &items[c as usize]).collect();
        let simulated = bad.choose(&shown);
        if good.choose(&shown) == real_pos && simulated != real_pos {
            return Some((at, candidates, simulated, real_pos));
        }
    }
    None
}

pub fn defects(data_dir: &Path, profiles_dir: &Path, out: &Path, config: &DefectsConfig) -> Result<DefectsStats> {
    if config.candidates < 2 || config.candidates > 26 {
        return Err(DataError::config("defects", "--candidates must be between 2 and 26"));
    }
    if config.per_class == 0 {
        return Err(DataError::config("defects", "--per-class must be at least 1"));
    }
    if !(0.0..1.0).contains(&config.eval_frac) {
        return Err(DataError::config("defects", format!("--eval-frac must be in [0, 1), found {}", config.eval_frac)));
    }
    let dataset = Dataset::load(data_dir)?;
    if dataset.items.len() < config.candidates * 2 {
        return Err(DataError::config("defects", "too few items for the requested number of candidates"));
    }
    let users: Vec<u32> = read_profiles(profiles_dir)?.into_iter().map(|r| r.user_id).collect();
    let truth = read_truth(data_dir)?;
    let context = ProfileContext::new(&dataset, ProfilesConfig::default());
    let by_user = dataset.by_user();
    let seed = config.seed.unwrap_or(0);
    // Enough attempts per user and class to fill every class when users are few, with room
    // for the shapes the balancing leaves out.
    // (Bounded: a user's few preferences allow only so many distinct defects.)
    let rounds = (2 * config.per_class.div_ceil(users.len().max(1)) + 9).min(64);

    let generated: Vec<Vec<DefectSample>> = users
        .par_iter()
        .map(|&u| {
            let mut rng = Rng::stream(seed, "defects", u64::from(u));
            let history = by_user.get(u as usize).copied().unwrap_or_default();
            if history.len() < 2 {
                return Vec::new();
            }
            let good = match truth.as_ref().and_then(|t| t.get(u as usize)) {
                Some(p) => p.clone(),
                None => context.build(&dataset.users[u as usize], history),
            };
            let mut consumed: Vec<u32> = history.iter().map(|x| x.item_id).collect();
            consumed.sort_unstable();
            let split = if Rng::stream(seed, "defect-split", u64::from(u)).f64() < config.eval_frac { Split::Eval } else { Split::Train };
            let good_chooser = RuleChooser { likes: good.likes.clone(), dislikes: good.dislikes.clone() };
            let mut out = Vec::new();
            for _ in 0..rounds {
                for kind in DefectKind::ALL {
                    let Some((bad, edit, edited)) = inject(&good, kind, &mut rng) else { continue };
                    let bad_chooser = RuleChooser { likes: bad.likes.clone(), dislikes: bad.dislikes.clone() };
                    let Some((at, candidate_items, simulated, real)) =
                        find_case(&mut rng, &dataset.items, history, &consumed, &good_chooser, &bad_chooser, &edited, config)
                    else {
                        continue;
                    };
                    let recent = &history[at.saturating_sub(config.recent)..at];
                    let discrepancy = DiscrepancyCase::new(&dataset.items, bad.render(), recent, candidate_items, simulated, real);
                    let case = discrepancy.render_as(config.rendering, &dataset.items);
                    out.push(DefectSample {
                        shape: (bad.likes.len(), bad.dislikes.len()),
                        user_id: u,
                        split,
                        label: kind,
                        profile: discrepancy.profile,
                        good_profile: good.render(),
                        edit,
                        candidate_items: discrepancy.candidate_items,
                        candidates: discrepancy.candidates,
                        simulated_choice: simulated as u32,
                        real_choice: real as u32,
                        history: discrepancy.history,
                        history_items: discrepancy.history_items,
                        case,
                    });
                }
            }
            out
        })
        .collect();

    let all: Vec<DefectSample> = generated.into_iter().flatten().collect();
    let available = DefectKind::ALL.map(|k| all.iter().filter(|s| s.label == k).count());
    let mut rng = Rng::stream(seed, "defect-pick", 0);
    let samples = balanced(all, config.per_class, &mut rng);
    let per_class = samples.len() / 3;
    if per_class == 0 {
        return Err(DataError::config("defects", format!("no discrepancy case could be produced for some class (found {available:?})")));
    }
    if per_class < config.per_class {
        tracing::warn!("only {per_class} samples per class could be produced with balanced profile shapes (found {available:?})");
    }
    let mut samples = samples;
    samples.sort_by_key(|s| (s.split, s.user_id));
    write_defects(&out.join(DEFECTS_FILE), &samples, config.rendering)?;
    let stats = DefectsStats {
        per_class,
        train: samples.iter().filter(|s| s.split == Split::Train).count(),
        eval: samples.iter().filter(|s| s.split == Split::Eval).count(),
        users: users.len(),
        available,
    };
    write_json(&out.join("defects.json"), &stats)?;
    Ok(stats)
}

/// Up to `per_class` samples of each class such that every profile shape (likes, dislikes
/// stated) holds the same number of samples of each class: a defect changes how many
/// preferences a profile states (Incomplete deletes one, Both deletes one and flips one), so
/// without this the shape alone would tell the class.
fn balanced(all: Vec<DefectSample>, per_class: usize, rng: &mut Rng) -> Vec<DefectSample> {
    let mut strata: std::collections::BTreeMap<(usize, usize), [Vec<DefectSample>; 3]> = std::collections::BTreeMap::new();
    for sample in all {
        let class = sample.label.index();
        strata.entry(sample.shape).or_default()[class].push(sample);
    }
    let mut strata: Vec<[Vec<DefectSample>; 3]> = strata.into_values().collect();
    for classes in &mut strata {
        for class in classes.iter_mut() {
            rng.shuffle(class);
        }
    }
    // One sample of each class from each shape in turn, so that every class gets the same shapes.
    let mut out = Vec::with_capacity(per_class * 3);
    let mut taken = 0;
    while taken < per_class {
        let mut progressed = false;
        for classes in &mut strata {
            if taken == per_class {
                break;
            }
            if classes.iter().all(|c| !c.is_empty()) {
                out.extend(classes.iter_mut().filter_map(Vec::pop));
                taken += 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    out
}

fn write_defects(path: &Path, samples: &[DefectSample], rendering: Rendering) -> Result<()> {
    pq::write(
        path,
        vec![
            ("sample_id", pq::u32_col(0..samples.len() as u32)),
            ("user_id", pq::u32_col(samples.iter().map(|s| s.user_id))),
            ("split", pq::str_col(samples.iter().map(|s| s.split.name()))),
            ("label", pq::str_col(samples.iter().map(|s| s.label.name()))),
            ("profile", pq::str_col(samples.iter().map(|s| &s.profile))),
            ("good_profile", pq::str_col(samples.iter().map(|s| &s.good_profile))),
            ("edit", pq::str_col(samples.iter().map(|s| &s.edit))),
            ("candidate_items", pq::u32_list_col(samples.iter().map(|s| s.candidate_items.as_slice()))),
            ("candidates", pq::str_list_col(samples.iter().map(|s| s.candidates.as_slice()))),
            ("simulated_choice", pq::u32_col(samples.iter().map(|s| s.simulated_choice))),
            ("real_choice", pq::u32_col(samples.iter().map(|s| s.real_choice))),
            ("history", pq::str_col(samples.iter().map(|s| &s.history))),
            ("history_items", pq::u32_list_col(samples.iter().map(|s| s.history_items.as_slice()))),
            ("case", pq::str_col(samples.iter().map(|s| &s.case))),
            ("rendering", pq::str_col(samples.iter().map(|_| rendering.name()))),
        ],
    )
}
