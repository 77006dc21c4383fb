//! DGDPO (METHODS.md section 5): each user's profile is optimised along D_opt in time order.
//! At each step the simulator, driven by the profile, chooses among the real item and sampled
//! negatives; a wrong choice is a discrepancy case, which the diagnoser labels and the
//! treatment rewrites for; the rewrite is kept only if the simulator, re-asked the same case,
//! now makes the real choice. Users advance in lock-step so that every model call is batched
//! across users.
//!
//! The final profiles are measured on the held-out test items with the behaviour-fidelity
//! protocol (each real item among m = 1, 3, 9 times as many sampled negatives; the simulator
//! says yes or no to each), against the static initial profile, refinement without diagnosis
//! and the raw history; in the synthetic world also against the ground-truth preferences.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use simforge_data::defects::DefectKind;
use simforge_data::diagnosis::DiscrepancyCase;
use simforge_data::journal::Journal;
use simforge_data::parquet_io as pq;
use simforge_data::prep::read_truth;
use simforge_data::profile::Profile;
use simforge_data::profiles::read_profiles;
use simforge_data::rng::Rng;
use simforge_data::scenes::unseen_items;
use simforge_data::split::{read_split, Part};
use simforge_data::tables::{Dataset, Interaction};
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::burn::tensor::Device;

use crate::diagnosis::{label, open_diagnoser, Diagnoser, Renamed};
use crate::error::{EvalError, Result};
use crate::llm::Named;
use crate::plot;
use crate::report::MarkdownTable;
use crate::simulator::open_simulator;
use crate::treatment::open_treatment;
use simforge_data::rng::argmax;

use crate::simulator::{Persona, Simulator};
use crate::treatment::Treatment;

pub const HISTORY_FILE: &str = "profile_history.parquet";

/// When a rewrite replaces the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepRule {
    /// Only when the re-asked simulator now makes the real choice.
    Fixed,
    /// Always.
    Always,
}

/// `simforge eval dgdpo` settings (a recipe's `[dgdpo]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DgdpoConfig {
    /// Who simulates: `rule` (the profile-driven chooser), a model folder / `local:DIR`, or
    /// `openai:MODEL[@URL]`.
    pub simulator: Option<AgentSpec>,
    /// Who diagnoses discrepancies: `rule`, a model folder (the diagnostic model) or `openai:…`.
    pub diagnoser: Option<AgentSpec>,
    /// Who rewrites profiles: `rule` (edits the stated likes and dislikes) or a model.
    pub treatment: Option<AgentSpec>,
    /// Items shown at each optimisation step: the real one and sampled negatives (2 to 26).
    pub candidates: usize,
    /// History items quoted in a discrepancy case.
    pub recent: usize,
    /// History items the raw-history baseline shows (the newest before the test part).
    pub history_items: usize,
    /// When a rewrite replaces the profile: fixed (it no longer fails its case) or always.
    pub keep: KeepRule,
    /// Evaluate a seeded sample of this many users (all when unset).
    pub max_users: Option<usize>,
    /// Cases per batch of model calls (across users).
    pub batch_size: usize,
    /// Longest rewritten profile a model treatment may write, in tokens.
    pub max_new_tokens: usize,
    /// How `openai` parts talk to their endpoints.
    pub endpoint: EndpointSettings,
    pub seed: Option<u64>,
}

impl Default for DgdpoConfig {
    fn default() -> Self {
        Self {
            simulator: None,
            diagnoser: None,
            treatment: None,
            candidates: 5,
            recent: 5,
            history_items: 20,
            keep: KeepRule::Fixed,
            max_users: None,
            batch_size: 32,
            max_new_tokens: 160,
            endpoint: EndpointSettings::default(),
            seed: None,
        }
    }
}

/// The negatives per real test item of the fidelity protocol.
pub const NEGATIVE_RATIOS: [usize; 3] = [1, 3, 9];

/// Where a measured profile comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Optimised along D_opt with diagnosis and treatment.
    Dgdpo,
    /// The initial single-step profile from D_ini.
    Static,
    /// Optimised along D_opt, the treatment told only that the profile is wrong.
    RefineWithoutDiagnosis,
    /// No profile: the simulator reads the newest history before the test part.
    RawHistory,
    /// The synthetic world's true profile, measured as a ceiling (not a baseline).
    GroundTruth,
}

impl Method {
    /// DGDPO and the baselines it is compared with, in report order.
    pub const COMPARED: [Method; 4] = [Method::Dgdpo, Method::Static, Method::RefineWithoutDiagnosis, Method::RawHistory];

    /// The name reports and `profile_history.parquet` use.
    pub fn name(self) -> &'static str {
        match self {
            Method::Dgdpo => "dgdpo",
            Method::Static => "static",
            Method::RefineWithoutDiagnosis => "refine_without_diagnosis",
            Method::RawHistory => "raw_history",
            Method::GroundTruth => "ground_truth",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One user's history and its split.
struct UserData<'a> {
    user_id: u32,
    history: &'a [Interaction],
    /// Indices into `history` of D_opt and of the test part.
    optimise: Vec<usize>,
    test: Vec<usize>,
    /// Every item the user interacted with, sorted.
    consumed: Vec<u32>,
    initial_profile: String,
    truth: Option<Profile>,
}

/// Precision, recall, F1 and accuracy of yes/no picks, and their counts.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Fidelity {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub tn: usize,
}

impl Fidelity {
    fn from_counts(tp: usize, fp: usize, fn_: usize, tn: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        Self { precision, recall, f1, accuracy: ratio(tp + tn, tp + fp + fn_ + tn), tp, fp, fn_, tn }
    }
}

/// What the optimisation loop did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LoopStats {
    pub steps: usize,
    pub discrepancies: usize,
    pub rewrites_kept: usize,
    pub rewrites_rejected: usize,
    /// Diagnoses by label (DGDPO only).
    pub diagnoses: BTreeMap<String, usize>,
}

/// Agreement of stated preferences with the synthetic world's true ones, averaged over users.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Correctness {
    /// Share of the true likes and dislikes that the profile states.
    pub true_stated: f64,
    /// Share of the stated likes and dislikes that are false.
    pub false_stated: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DgdpoReport {
    pub simulator: String,
    pub diagnoser: String,
    pub treatment: String,
    pub users: usize,
    pub test_items: usize,
    /// Per method (`dgdpo`, `static`, `refine_without_diagnosis`, `raw_history`; in the
    /// synthetic world also `ground_truth`, the true profiles), per m (`m1`, `m3`, `m9`).
    pub methods: BTreeMap<String, BTreeMap<String, Fidelity>>,
    /// DGDPO's precision relative to the best baseline's, per m: (dgdpo − best) / best.
    pub relative_improvement: BTreeMap<String, f64>,
    pub optimisation: BTreeMap<String, LoopStats>,
    /// Synthetic world only: per method, before (`static`) and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_correctness: Option<BTreeMap<String, Correctness>>,
    /// Synthetic world only: the mean correctness after each optimisation step, per method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correctness_curve: Option<BTreeMap<String, Vec<Correctness>>>,
    pub config: DgdpoConfig,
}

/// A row of `profile_history.parquet`.
struct Version {
    method: Method,
    user_id: u32,
    version: u32,
    step: Option<u32>,
    real_item: Option<u32>,
    diagnosis: Option<&'static str>,
    kept: bool,
    reason: &'static str,
    profile: String,
}

/// What one optimisation step of one method did: the journal's record, from which the loop's
/// state advances whether the step ran now or in a run that was stopped.
#[derive(Debug, Serialize, Deserialize)]
struct StepRecord {
    method: String,
    step: usize,
    /// Users asked (those whose D_opt is this long).
    asked: usize,
    rewrites: Vec<Rewrite>,
}

/// A discrepancy's rewrite: whose (an index into the loop's users), what the diagnoser said,
/// whether the re-asked simulator then made the real choice, and whether it was kept.
#[derive(Debug, Serialize, Deserialize)]
struct Rewrite {
    user: usize,
    diagnosis: Option<DefectKind>,
    fixed: bool,
    kept: bool,
    profile: String,
}

/// The loop's state after its steps so far.
struct LoopState {
    profiles: Vec<String>,
    version_of: Vec<u32>,
    stats: LoopStats,
    curve: Vec<Correctness>,
    next_step: usize,
}

/// The journal of a DGDPO run in its output folder while it runs.
pub const PROGRESS_FILE: &str = "dgdpo-progress.jsonl";

/// The parts that play the loop.
pub struct Parts<'a> {
    pub simulator: &'a mut dyn Simulator,
    pub diagnoser: &'a mut dyn Diagnoser,
    pub treatment: &'a mut dyn Treatment,
}

fn correctness(profile: &str, truth: &Profile) -> Correctness {
    let (likes, dislikes) = Profile::stated_preferences(profile);
    let truly = likes.iter().filter(|l| truth.likes.contains(l)).count() + dislikes.iter().filter(|d| truth.dislikes.contains(d)).count();
    let true_total = truth.likes.len() + truth.dislikes.len();
    let stated = likes.len() + dislikes.len();
    Correctness {
        true_stated: if true_total == 0 { 0.0 } else { truly as f64 / true_total as f64 },
        false_stated: if stated == 0 { 0.0 } else { (stated - truly) as f64 / stated as f64 },
    }
}

fn mean_correctness(users: &[UserData], profiles: &[String]) -> Correctness {
    let scored: Vec<Correctness> = users.iter().zip(profiles).filter_map(|(u, p)| u.truth.as_ref().map(|t| correctness(p, t))).collect();
    let n = scored.len().max(1) as f64;
    Correctness { true_stated: scored.iter().map(|c| c.true_stated).sum::<f64>() / n, false_stated: scored.iter().map(|c| c.false_stated).sum::<f64>() / n }
}

struct Loop<'a, 'd> {
    dataset: &'d Dataset,
    users: &'a [UserData<'d>],
    config: &'a DgdpoConfig,
    seed: u64,
}

impl Loop<'_, '_> {
    /// The candidates of user `u`'s optimisation step `t`: the real item at a seeded position.
    fn step_candidates(&self, u: usize, t: usize) -> (Vec<u32>, usize) {
        let user = &self.users[u];
        let real = user.history[user.optimise[t]].item_id;
        let mut rng = Rng::stream(self.seed, "dgdpo-step", (u64::from(user.user_id) << 24) | t as u64);
        let mut candidates = unseen_items(&mut rng, &user.consumed, self.dataset.items.len(), self.config.candidates - 1);
        let at = rng.below(candidates.len() + 1);
        candidates.insert(at, real);
        (candidates, at)
    }

    fn case(&self, u: usize, t: usize, profile: &str, candidates: &[u32], simulated: usize, real: usize) -> DiscrepancyCase {
        let user = &self.users[u];
        let end = user.optimise[t];
        let recent = &user.history[end.saturating_sub(self.config.recent)..end];
        DiscrepancyCase::new(&self.dataset.items, profile.to_owned(), recent, candidates.to_vec(), simulated, real)
    }

    /// Simulator choices for `asks` (profile, candidates), in batches.
    fn choices(&self, simulator: &mut dyn Simulator, asks: &[(String, Vec<u32>)]) -> Result<Vec<usize>> {
        let personas: Vec<Persona> = asks.iter().map(|(p, _)| Persona { profile: Some(p.clone()), history: Vec::new() }).collect();
        let mut out = Vec::with_capacity(asks.len());
        for (chunk, persona_chunk) in asks.chunks(self.config.batch_size.max(1)).zip(personas.chunks(self.config.batch_size.max(1))) {
            let batch: Vec<(&Persona, &[u32])> = persona_chunk.iter().zip(chunk).map(|(p, (_, c))| (p, c.as_slice())).collect();
            out.extend(simulator.choose(&batch)?.iter().map(|p| argmax(p)));
        }
        Ok(out)
    }

    /// Optimises every profile along D_opt; `diagnose` false is refinement without diagnosis.
    /// Steps in `done` (this method's, from a stopped run) are replayed, the rest run and are
    /// written to `journal`. Returns the final profiles, the stats and the correctness after
    /// each step, and adds every version to `versions`.
    fn run(
        &self,
        parts: &mut Parts,
        method: Method,
        diagnose: bool,
        done: Vec<StepRecord>,
        journal: &mut Journal,
        versions: &mut Vec<Version>,
    ) -> Result<(Vec<String>, LoopStats, Vec<Correctness>)> {
        let profiles: Vec<String> = self.users.iter().map(|u| u.initial_profile.clone()).collect();
        for (user, profile) in self.users.iter().zip(&profiles) {
            versions.push(Version {
                method,
                user_id: user.user_id,
                version: 0,
                step: None,
                real_item: None,
                diagnosis: None,
                kept: true,
                reason: "initial profile from D_ini",
                profile: profile.clone(),
            });
        }
        let curve = vec![mean_correctness(self.users, &profiles)];
        let mut state = LoopState { version_of: vec![0; profiles.len()], profiles, stats: LoopStats::default(), curve, next_step: 0 };
        let longest = self.users.iter().map(|u| u.optimise.len()).max().unwrap_or(0);
        if !done.is_empty() {
            tracing::info!("{method}: resuming after step {}/{longest}", done.len());
        }
        for record in done {
            self.advance(&mut state, method, record, versions)?;
        }
        for t in state.next_step..longest {
            let record = self.step(parts, method, diagnose, t, &state.profiles)?;
            journal.append(&record)?;
            self.advance(&mut state, method, record, versions)?;
            let stats = &state.stats;
            tracing::info!("{method}: step {}/{longest}, {} discrepancies so far, {} rewrites kept", t + 1, stats.discrepancies, stats.rewrites_kept);
        }
        Ok((state.profiles, state.stats, state.curve))
    }

    /// Step `t` of `method` from `profiles`: the simulator's choices, each discrepancy
    /// diagnosed (when `diagnose`), rewritten and re-asked.
    fn step(&self, parts: &mut Parts, method: Method, diagnose: bool, t: usize, profiles: &[String]) -> Result<StepRecord> {
        let active: Vec<usize> = (0..self.users.len()).filter(|&u| t < self.users[u].optimise.len()).collect();
        let shown: Vec<(Vec<u32>, usize)> = active.iter().map(|&u| self.step_candidates(u, t)).collect();
        let asks: Vec<(String, Vec<u32>)> = active.iter().zip(&shown).map(|(&u, (c, _))| (profiles[u].clone(), c.clone())).collect();
        let chosen = self.choices(parts.simulator, &asks)?;
        // Each discrepancy's case, and whose it is.
        let (mut cases, mut owners) = (Vec::new(), Vec::new());
        for ((&u, (candidates, real)), simulated) in active.iter().zip(&shown).zip(chosen) {
            if simulated != *real {
                cases.push(self.case(u, t, &profiles[u], candidates, simulated, *real));
                owners.push(u);
            }
        }
        let diagnoses: Vec<Option<DefectKind>> = if diagnose {
            let mut out = Vec::with_capacity(cases.len());
            for chunk in cases.chunks(self.config.batch_size.max(1)) {
                out.extend(parts.diagnoser.diagnose(chunk)?.iter().map(|p| Some(label(p))));
            }
            out
        } else {
            vec![None; cases.len()]
        };
        let mut rewrites = Vec::with_capacity(cases.len());
        let treat_asks: Vec<(&DiscrepancyCase, Option<DefectKind>)> = cases.iter().zip(&diagnoses).map(|(c, d)| (c, *d)).collect();
        for chunk in treat_asks.chunks(self.config.batch_size.max(1)) {
            rewrites.extend(parts.treatment.treat(chunk)?);
        }
        let recheck: Vec<(String, Vec<u32>)> = cases.iter().zip(&rewrites).map(|(c, p)| (p.clone(), c.candidate_items.clone())).collect();
        let rechosen = self.choices(parts.simulator, &recheck)?;
        let rewrites = owners
            .into_iter()
            .zip(&cases)
            .zip(rewrites)
            .zip(rechosen)
            .zip(diagnoses)
            .map(|((((user, case), profile), again), diagnosis)| {
                let fixed = again == case.real;
                Rewrite { user, diagnosis, fixed, kept: fixed || self.config.keep == KeepRule::Always, profile }
            })
            .collect();
        Ok(StepRecord { method: method.name().to_owned(), step: t, asked: asks.len(), rewrites })
    }

    /// The state after `record`, the next step of `method`, with its versions added.
    fn advance(&self, state: &mut LoopState, method: Method, record: StepRecord, versions: &mut Vec<Version>) -> Result<()> {
        let t = record.step;
        if record.method != method.name() || t != state.next_step || record.rewrites.iter().any(|r| r.user >= self.users.len()) {
            return Err(EvalError::settings(
                PROGRESS_FILE,
                format!("expected step {} of {method}, found step {t} of {}; remove the file to start over", state.next_step, record.method),
            ));
        }
        let stats = &mut state.stats;
        stats.steps += record.asked;
        stats.discrepancies += record.rewrites.len();
        for rewrite in record.rewrites {
            if let Some(d) = rewrite.diagnosis {
                *stats.diagnoses.entry(d.name().to_owned()).or_default() += 1;
            }
            let u = rewrite.user;
            if rewrite.kept {
                state.profiles[u] = rewrite.profile.clone();
                stats.rewrites_kept += 1;
            } else {
                stats.rewrites_rejected += 1;
            }
            state.version_of[u] += 1;
            let user = &self.users[u];
            versions.push(Version {
                method,
                user_id: user.user_id,
                version: state.version_of[u],
                step: Some(t as u32),
                real_item: Some(user.history[user.optimise[t]].item_id),
                diagnosis: rewrite.diagnosis.map(DefectKind::name),
                kept: rewrite.kept,
                reason: match (rewrite.fixed, rewrite.kept) {
                    (true, _) => "kept: the rewrite makes the real choice",
                    (false, true) => "kept although it still misses the real choice (keep = always)",
                    (false, false) => "rejected: still a discrepancy",
                },
                profile: rewrite.profile,
            });
        }
        state.curve.push(mean_correctness(self.users, &state.profiles));
        state.next_step = t + 1;
        Ok(())
    }

    /// Fidelity of each persona on its user's test items, per negative ratio. The negatives of
    /// the largest ratio are drawn once per user (the same for every method); smaller ratios
    /// use their first items.
    fn fidelity(&self, simulator: &mut dyn Simulator, personas: &[Persona]) -> Result<BTreeMap<String, Fidelity>> {
        let most = NEGATIVE_RATIOS.iter().copied().max().unwrap_or(1);
        let mut asks: Vec<(usize, u32, Option<usize>)> = Vec::new(); // user, item, rank among negatives (None: real)
        for (u, user) in self.users.iter().enumerate() {
            let test: Vec<u32> = user.test.iter().map(|&i| user.history[i].item_id).collect();
            let mut rng = Rng::stream(self.seed, "fidelity-negatives", u64::from(user.user_id));
            asks.extend(test.iter().map(|&item| (u, item, None)));
            let negs = unseen_items(&mut rng, &user.consumed, self.dataset.items.len(), most * test.len());
            asks.extend(negs.into_iter().enumerate().map(|(rank, item)| (u, item, Some(rank))));
        }
        let mut picks = Vec::with_capacity(asks.len());
        for chunk in asks.chunks(self.config.batch_size.max(1)) {
            let batch: Vec<(&Persona, u32)> = chunk.iter().map(|&(u, item, _)| (&personas[u], item)).collect();
            picks.extend(simulator.pick(&batch)?);
        }
        Ok(NEGATIVE_RATIOS
            .iter()
            .map(|&m| {
                let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
                for (&(u, _, rank), &p) in asks.iter().zip(&picks) {
                    let yes = p > 0.5;
                    match rank {
                        None if yes => tp += 1,
                        None => fn_ += 1,
                        Some(r) if r < m * self.users[u].test.len() => {
                            if yes {
                                fp += 1
                            } else {
                                tn += 1
                            }
                        }
                        Some(_) => {}
                    }
                }
                (format!("m{m}"), Fidelity::from_counts(tp, fp, fn_, tn))
            })
            .collect())
    }
}

/// Opens the parts `config` names (`rule` where unset; the diagnoser falls back to
/// `default_diagnoser`, named as given) and runs [`run_dgdpo`] on the prepared data in `data`.
pub fn evaluate_dgdpo(
    data: &Path,
    split: &Path,
    profiles: &Path,
    config: &DgdpoConfig,
    default_diagnoser: &Named,
    out: &Path,
    device: &Device,
) -> Result<DgdpoReport> {
    let dataset = Dataset::load(data)?;
    let items = dataset.items.as_slice();
    let spec = |s: &Option<AgentSpec>| s.clone().unwrap_or(AgentSpec::Rule);
    let mut simulator = open_simulator(&spec(&config.simulator), items, &config.endpoint, device)?;
    let mut diagnoser = match &config.diagnoser {
        Some(spec) => open_diagnoser(spec, items, &config.endpoint, device)?,
        None => Box::new(Renamed { name: default_diagnoser.name.clone(), inner: open_diagnoser(&default_diagnoser.spec, items, &config.endpoint, device)? }),
    };
    let mut treatment = open_treatment(&spec(&config.treatment), items, config.max_new_tokens, &config.endpoint, device)?;
    let mut parts = Parts { simulator: simulator.as_mut(), diagnoser: diagnoser.as_mut(), treatment: treatment.as_mut() };
    run_dgdpo(data, &dataset, split, profiles, &mut parts, config, out)
}

/// Reads the split and initial profiles of the prepared data in `data` (`dataset`, loaded); runs DGDPO and refinement without
/// diagnosis; measures all four methods; writes `report.json`, `report.md`,
/// `profile_history.parquet` and the plots into `out`.
pub fn run_dgdpo(
    data: &Path,
    dataset: &Dataset,
    split_dir: &Path,
    profiles_dir: &Path,
    parts: &mut Parts,
    config: &DgdpoConfig,
    out: &Path,
) -> Result<DgdpoReport> {
    if !(2..=26).contains(&config.candidates) {
        return Err(EvalError::settings("candidates", format!("must be between 2 and 26, found {}", config.candidates)));
    }
    let split = read_split(split_dir, dataset)?;
    let truth = read_truth(data)?;
    let by_user = dataset.by_user();
    let seed = config.seed.unwrap_or(0);
    let mut users: Vec<UserData> = Vec::new();
    for row in read_profiles(profiles_dir)? {
        let u = row.user_id as usize;
        let (Some(Some(parts_of)), Some(history)) = (split.get(u), by_user.get(u)) else { continue };
        if parts_of.len() != history.len() {
            return Err(EvalError::settings(
                split_dir.display().to_string(),
                format!("user {u} has {} split rows but {} interactions in {}; split and data differ", parts_of.len(), history.len(), data.display()),
            ));
        }
        let of = |want: Part| parts_of.iter().enumerate().filter(|(_, p)| **p == want).map(|(i, _)| i).collect::<Vec<_>>();
        let mut consumed: Vec<u32> = history.iter().map(|x| x.item_id).collect();
        consumed.sort_unstable();
        consumed.dedup();
        users.push(UserData {
            user_id: row.user_id,
            history,
            optimise: of(Part::Optimise),
            test: of(Part::Test),
            consumed,
            initial_profile: row.profile,
            truth: truth.as_ref().and_then(|t| t.get(u)).cloned(),
        });
    }
    if let Some(max) = config.max_users.filter(|&m| m < users.len()) {
        let mut rng = Rng::stream(seed, "dgdpo-users", 0);
        rng.shuffle(&mut users);
        users.truncate(max);
        users.sort_by_key(|u| u.user_id);
    }
    if users.is_empty() {
        return Err(EvalError::settings("dgdpo", format!("no user has both a profile in {} and a split in {}", profiles_dir.display(), split_dir.display())));
    }
    let run = Loop { dataset, users: &users, config, seed };
    // A stopped run of the same settings, parts and users continues after its last step.
    let key = serde_json::json!({
        "config": config,
        "parts": [parts.simulator.name(), parts.diagnoser.name(), parts.treatment.name()],
        "users": users.iter().map(|u| u.user_id).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(out).map_err(|e| simforge_data::DataError::io(out, e))?;
    let (mut journal, done) = Journal::open::<StepRecord>(&out.join(PROGRESS_FILE), &key)?;
    let (done_dgdpo, done_refine): (Vec<_>, Vec<_>) = done.into_iter().partition(|r| r.method == Method::Dgdpo.name());
    let mut versions = Vec::new();
    let (optimised, dgdpo_stats, dgdpo_curve) = run.run(parts, Method::Dgdpo, true, done_dgdpo, &mut journal, &mut versions)?;
    let (refined, refine_stats, refine_curve) = run.run(parts, Method::RefineWithoutDiagnosis, false, done_refine, &mut journal, &mut versions)?;

    let initial: Vec<String> = users.iter().map(|u| u.initial_profile.clone()).collect();
    let with_profiles = |profiles: &[String]| profiles.iter().map(|p| Persona { profile: Some(p.clone()), history: Vec::new() }).collect::<Vec<_>>();
    let raw_history: Vec<Persona> = users
        .iter()
        .map(|u| {
            let before_test = u.test.first().copied().unwrap_or(u.history.len());
            Persona { profile: None, history: u.history[before_test.saturating_sub(config.history_items)..before_test].to_vec() }
        })
        .collect();
    let synthetic = users.iter().all(|u| u.truth.is_some());
    let mut measured = vec![
        (Method::Dgdpo, with_profiles(&optimised)),
        (Method::Static, with_profiles(&initial)),
        (Method::RefineWithoutDiagnosis, with_profiles(&refined)),
        (Method::RawHistory, raw_history),
    ];
    if synthetic {
        // The ceiling a profile can reach with this simulator: the world's true preferences.
        let truth: Vec<String> = users.iter().filter_map(|u| u.truth.as_ref().map(Profile::render)).collect();
        measured.push((Method::GroundTruth, with_profiles(&truth)));
    }
    let mut methods = BTreeMap::new();
    for (method, personas) in measured {
        tracing::info!("{method}: measuring on the test items");
        methods.insert(method.name().to_owned(), run.fidelity(parts.simulator, &personas)?);
    }
    let relative_improvement = NEGATIVE_RATIOS
        .iter()
        .map(|m| {
            let key = format!("m{m}");
            let best = Method::COMPARED[1..].iter().map(|b| methods[b.name()][&key].precision).fold(0.0f64, f64::max);
            let ours = methods[Method::Dgdpo.name()][&key].precision;
            (key, if best > 0.0 { (ours - best) / best } else { 0.0 })
        })
        .collect();
    let report = DgdpoReport {
        simulator: parts.simulator.name(),
        diagnoser: parts.diagnoser.name(),
        treatment: parts.treatment.name(),
        users: users.len(),
        test_items: users.iter().map(|u| u.test.len()).sum(),
        methods,
        relative_improvement,
        optimisation: [(Method::Dgdpo.name().to_owned(), dgdpo_stats), (Method::RefineWithoutDiagnosis.name().to_owned(), refine_stats)].into(),
        profile_correctness: synthetic.then(|| {
            [
                (Method::Static.name().to_owned(), mean_correctness(&users, &initial)),
                (Method::Dgdpo.name().to_owned(), mean_correctness(&users, &optimised)),
                (Method::RefineWithoutDiagnosis.name().to_owned(), mean_correctness(&users, &refined)),
            ]
            .into()
        }),
        correctness_curve: synthetic
            .then(|| [(Method::Dgdpo.name().to_owned(), dgdpo_curve), (Method::RefineWithoutDiagnosis.name().to_owned(), refine_curve)].into()),
        config: config.clone(),
    };
    write_versions(&out.join(HISTORY_FILE), &versions)?;
    simforge_data::fsutil::write_text(&out.join("precision.svg"), &report.precision_plot())?;
    if let Some(svg) = report.correctness_plot() {
        simforge_data::fsutil::write_text(&out.join("correctness.svg"), &svg)?;
    }
    simforge_data::fsutil::write_json(&out.join("report.json"), &report)?;
    simforge_data::fsutil::write_text(&out.join("report.md"), &report.markdown())?;
    journal.finish()?;
    Ok(report)
}

fn write_versions(path: &Path, versions: &[Version]) -> Result<()> {
    Ok(pq::write(
        path,
        vec![
            ("method", pq::str_col(versions.iter().map(|v| v.method.name()))),
            ("user_id", pq::u32_col(versions.iter().map(|v| v.user_id))),
            ("version", pq::u32_col(versions.iter().map(|v| v.version))),
            ("step", pq::opt_u32_col(versions.iter().map(|v| v.step))),
            ("real_item", pq::opt_u32_col(versions.iter().map(|v| v.real_item))),
            ("diagnosis", pq::opt_str_col(versions.iter().map(|v| v.diagnosis))),
            ("kept", pq::bool_col(versions.iter().map(|v| v.kept))),
            ("reason", pq::str_col(versions.iter().map(|v| v.reason))),
            ("profile", pq::str_col(versions.iter().map(|v| &v.profile))),
        ],
    )?)
}

impl DgdpoReport {
    /// The methods this report measured, in report order (the ground truth last, where there is one).
    fn measured(&self) -> impl Iterator<Item = Method> + '_ {
        Method::COMPARED.into_iter().chain(self.methods.contains_key(Method::GroundTruth.name()).then_some(Method::GroundTruth))
    }

    fn precision_plot(&self) -> String {
        let groups: Vec<String> = NEGATIVE_RATIOS.iter().map(|m| format!("m = {m}")).collect();
        let series: Vec<(String, Vec<f64>)> = self
            .measured()
            .map(|method| (method.name().to_owned(), NEGATIVE_RATIOS.iter().map(|m| self.methods[method.name()][&format!("m{m}")].precision).collect()))
            .collect();
        plot::grouped_bars("Precision on held-out items", "precision", &groups, &series)
    }

    fn correctness_plot(&self) -> Option<String> {
        let curves = self.correctness_curve.as_ref()?;
        let mut series = Vec::new();
        for (name, curve) in curves {
            series.push((format!("{name}: true stated"), curve.iter().map(|c| c.true_stated).collect()));
            series.push((format!("{name}: false stated"), curve.iter().map(|c| c.false_stated).collect()));
        }
        Some(plot::lines("Profile correctness over optimisation steps", "step along D_opt", "share", &series))
    }

    pub fn markdown(&self) -> String {
        let f4 = |x: f64| format!("{x:.4}");
        let mut precision = MarkdownTable::new(&["method", "P m=1", "P m=3", "P m=9", "R m=3", "F1 m=3", "Acc m=3"]);
        for name in self.measured().map(Method::name) {
            let f = &self.methods[name];
            precision.row(&[
                name.to_owned(),
                f4(f["m1"].precision),
                f4(f["m3"].precision),
                f4(f["m9"].precision),
                f4(f["m3"].recall),
                f4(f["m3"].f1),
                f4(f["m3"].accuracy),
            ]);
        }
        let relative = self.relative_improvement.iter().map(|(m, r)| format!("{m} {:+.1} %", 100.0 * r)).collect::<Vec<_>>().join(", ");
        let mut optimisation = MarkdownTable::new(&["method", "steps", "discrepancies", "rewrites kept", "rejected", "diagnoses"]);
        for (name, s) in &self.optimisation {
            let diagnoses = s.diagnoses.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            let diagnoses = if diagnoses.is_empty() { "—".into() } else { diagnoses };
            optimisation.row(&[
                name.clone(),
                s.steps.to_string(),
                s.discrepancies.to_string(),
                s.rewrites_kept.to_string(),
                s.rewrites_rejected.to_string(),
                diagnoses,
            ]);
        }
        let mut md = format!(
            "# DGDPO profile optimisation\n\nSimulator `{}`, diagnoser `{}`, treatment `{}`; {} users, {} held-out test items, each among m sampled negatives per item.\n\n{}\nDGDPO's precision relative to the best baseline: {relative} (published: +19 to +29 %).\n\n![precision](precision.svg)\n\n## The optimisation\n\n{}",
            self.simulator,
            self.diagnoser,
            self.treatment,
            self.users,
            self.test_items,
            precision.render(),
            optimisation.render()
        );
        if let Some(c) = &self.profile_correctness {
            let mut correctness = MarkdownTable::new(&["profiles", "true preferences stated", "stated preferences false"]);
            for (name, c) in c {
                correctness.row(&[name.clone(), f4(c.true_stated), f4(c.false_stated)]);
            }
            md.push_str(&format!(
                "\n## Profile correctness against the synthetic world's truth\n\n{}\n![correctness](correctness.svg)\n",
                correctness.render()
            ));
        }
        md
    }
}
