//! UserMirrorer distillation (METHODS.md section 4): teacher and student both write sampled
//! decisions for every training scene; the scenes where the teacher's reasoning settles the
//! choice and the student's does not (the largest uncertainty gap) become SFT and DPO data.
//!
//! Output folder: `decisions.parquet` (every decision; built from `decisions.parts/`, one
//! part per finished batch, so an interrupted run resumes without losing or repeating one),
//! `uncertainty.parquet`, `sft.parquet`, `dpo.parquet`, `choices.parquet`, `selection.json`,
//! `distill.json`.

pub mod ensemble;
pub mod oracle;
pub mod remote;
pub mod teacher;
pub mod uncertainty;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use simforge_data::fsutil::{read_json, write_json};
use simforge_data::parquet_io::{self as pq, Table};
use simforge_data::rng::Rng;
use simforge_data::scenes::letter;
use simforge_data::tables::Split;

use crate::agent::{AgentSpec, EndpointSettings};
use crate::error::{Result, TrainerError};
use crate::inference::SamplingOptions;
use teacher::{Decision, DecisionScene, Teacher, DECISION_SYSTEM_PROMPT};
use uncertainty::{mean_distribution, pair, select, uncertainty, Candidate, Role, SelectionMode, Uncertainty};

pub const DECISIONS_FILE: &str = "decisions.parquet";
pub const SELECTION_FILE: &str = "selection.json";
/// The selected scenes with the teacher's choice distribution (`teacher_probs`), for SFT under
/// the option readout.
pub const CHOICES_FILE: &str = "choices.parquet";
const PARTS_DIR: &str = "decisions.parts";
const SETTINGS_FILE: &str = "distill.json";

/// `simforge distill` settings (a recipe's `[distill]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// The strong model: `oracle` (the synthetic world's truth), `ensemble[:SASREC_DIR]` (the
    /// three-voter ensemble on real data), `local:MODEL_DIR`, `openai:MODEL[@BASE_URL]` or
    /// `batch:OUTPUT.jsonl`.
    pub teacher: AgentSpec,
    /// The model being distilled, `local:MODEL_DIR`; in a recipe, the run's student when unset.
    pub student: Option<AgentSpec>,
    /// Decisions sampled per scene from each model (≥ 1).
    pub samples: usize,
    /// Sampling temperature of model-written decisions.
    pub temperature: f64,
    /// Nucleus (top-p) of model-written decisions.
    pub top_p: f64,
    /// Longest rationale a model may write, in tokens.
    pub max_new_tokens: usize,
    /// Scenes kept for training, stratified by dataset and list length.
    pub top_k: usize,
    /// gap (the largest uncertainty gaps) or random (the ablation, same size and strata).
    pub select: SelectionMode,
    /// Scenes per batch of model calls (and per resumable part; ≥ 1).
    pub batch_size: usize,
    /// Use a seeded sample of this many training scenes (all when unset).
    pub max_scenes: Option<usize>,
    pub seed: Option<u64>,
    /// How `openai` teachers talk to their endpoint.
    pub endpoint: EndpointSettings,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            teacher: AgentSpec::Oracle,
            student: None,
            samples: 10,
            temperature: 1.0,
            top_p: 0.9,
            max_new_tokens: 160,
            top_k: 10_000,
            select: SelectionMode::Gap,
            batch_size: 16,
            max_scenes: None,
            seed: None,
            endpoint: EndpointSettings::default(),
        }
    }
}

impl DistillConfig {
    /// How model-written decisions are sampled.
    pub fn sampling(&self) -> SamplingOptions {
        SamplingOptions { max_new_tokens: self.max_new_tokens, temperature: self.temperature, top_p: self.top_p, ..SamplingOptions::default() }
    }
}

/// The kinds that can write decisions.
pub const TEACHER_KINDS: &str = "oracle, ensemble[:SASREC_DIR], a model folder or local:DIR, openai:MODEL[@URL] or batch:FILE";

/// Opens a writer of decisions for `part` (the teacher, the student, a reasoning simulator):
/// `oracle` and `ensemble` need the prepared dataset the scenes come from; `openai` ones talk
/// to their endpoint with `endpoint`'s settings.
pub fn open_teacher(
    spec: &AgentSpec,
    part: &str,
    data: Option<&Path>,
    sampling: &SamplingOptions,
    endpoint: &EndpointSettings,
    device: &burn::tensor::Device,
) -> Result<Box<dyn Teacher>> {
    let needs_data = |what: &str| TrainerError::settings(format!("the {what} {part}"), "needs --data: the prepared dataset the scenes come from");
    Ok(match spec {
        AgentSpec::Oracle => Box::new(oracle::OracleTeacher::load(data.ok_or_else(|| needs_data("oracle"))?)?),
        AgentSpec::Local(dir) => match crate::readout::ReadoutModel::load(dir, device)? {
            Some(model) => Box::new(model),
            None => Box::new(teacher::LocalTeacher::load(dir, sampling.clone(), device)?),
        },
        AgentSpec::Ensemble(sasrec) => Box::new(ensemble::EnsembleTeacher::load(data.ok_or_else(|| needs_data("ensemble"))?, sasrec.as_deref(), device)?),
        AgentSpec::Batch(file) => Box::new(remote::BatchTeacher::load(file)?),
        AgentSpec::OpenAi { model, base_url } => {
            Box::new(remote::OpenAiTeacher::new(model.clone(), endpoint.open(base_url.as_deref())?, sampling.clone(), endpoint.concurrency))
        }
        AgentSpec::Rule => return Err(spec.unsupported(part, TEACHER_KINDS)),
    })
}

/// Counts at each step, written as `selection.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Selection {
    pub teacher: String,
    pub student: String,
    pub mode: SelectionMode,
    pub scenes_in: usize,
    /// Decisions a teacher could not give (malformed replies), left out of everything after.
    pub failed_decisions: usize,
    pub after_noise_filter: usize,
    pub with_pairs: usize,
    pub selected: usize,
    pub mean_gap_all: f64,
    pub mean_gap_selected: f64,
    /// Selected scenes per `dataset/options` stratum.
    pub strata: BTreeMap<String, usize>,
}

/// What identifies a distillation, so a resumed run cannot mix two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    scenes_sha256: String,
    teacher: String,
    student: String,
    samples: usize,
    temperature: f64,
    top_p: f64,
    max_new_tokens: usize,
    batch_size: usize,
    max_scenes: Option<usize>,
    seed: u64,
}

pub struct DistillJob<'a> {
    /// `scenes.parquet`; its `train` split is distilled.
    pub scenes: &'a Path,
    pub teacher: &'a mut dyn Teacher,
    pub student: &'a mut dyn Teacher,
    pub out: &'a Path,
    pub config: &'a DistillConfig,
}

/// The training scenes a distillation with `config` covers: the `train` split of `path`, or a
/// seeded sample of `max_scenes` of them, in scene order.
pub fn training_scenes(path: &Path, config: &DistillConfig) -> Result<Vec<DecisionScene>> {
    let mut scenes = teacher::read_decision_scenes(path, Some(Split::Train))?;
    if let Some(n) = config.max_scenes.filter(|&n| n < scenes.len()) {
        Rng::stream(config.seed.unwrap_or(0), "distill-scenes", 0).shuffle(&mut scenes);
        scenes.truncate(n);
        scenes.sort_by_key(|s| s.scene_id);
    }
    if scenes.is_empty() {
        return Err(TrainerError::Data(simforge_data::DataError::invalid(path, "no training scenes")));
    }
    Ok(scenes)
}

/// Runs `job`, calling `progress(scenes done, scenes)` after each batch.
pub fn distill(job: DistillJob, progress: &mut dyn FnMut(usize, usize)) -> Result<Selection> {
    // 1. The scenes and the settings they are distilled with.
    let c = job.config;
    if c.samples == 0 || c.batch_size == 0 {
        return Err(TrainerError::settings("distill", "samples and batch_size must be at least 1"));
    }
    let seed = c.seed.unwrap_or(0);
    let scenes = training_scenes(job.scenes, c)?;
    let settings = Settings {
        scenes_sha256: simforge_data::fsutil::sha256_file(job.scenes)?,
        teacher: job.teacher.name(),
        student: job.student.name(),
        samples: c.samples,
        temperature: c.temperature,
        top_p: c.top_p,
        max_new_tokens: c.max_new_tokens,
        batch_size: c.batch_size,
        max_scenes: c.max_scenes,
        seed,
    };
    std::fs::create_dir_all(job.out).map_err(|e| TrainerError::io(job.out, e))?;
    let settings_path = job.out.join(SETTINGS_FILE);
    if settings_path.exists() && read_json::<Settings>(&settings_path)? != settings {
        return Err(TrainerError::Data(simforge_data::DataError::invalid(
            &settings_path,
            "this folder holds decisions of a different distillation (scenes, models or sampling); use another --out or the same settings",
        )));
    }
    write_json(&settings_path, &settings)?;

    // 2. Decisions, batch by batch; each finished batch is one part file.
    let parts = job.out.join(PARTS_DIR);
    std::fs::create_dir_all(&parts).map_err(|e| TrainerError::io(&parts, e))?;
    let mut rows = read_decisions(&job.out.join(DECISIONS_FILE))?;
    for part in part_files(&parts)? {
        rows.extend(read_decisions(&part)?);
    }
    let done: std::collections::HashSet<u32> = rows.iter().map(|r| r.scene_id).collect();
    let mut finished = scenes.iter().filter(|s| done.contains(&s.scene_id)).count();
    progress(finished, scenes.len());
    for chunk in scenes.chunks(c.batch_size) {
        if chunk.iter().all(|s| done.contains(&s.scene_id)) {
            continue;
        }
        let batch_seed = Rng::stream(seed, "distill-batch", u64::from(chunk[0].scene_id)).next_u64();
        let mut batch = Vec::new();
        for (role, model) in [(Role::Teacher, &mut *job.teacher), (Role::Student, &mut *job.student)] {
            let decisions = model.decide(chunk, c.samples, batch_seed ^ role as u64)?;
            batch.extend(chunk.iter().zip(decisions).flat_map(|(scene, ds)| {
                ds.into_iter().enumerate().map(move |(sample, d)| DecisionRow { scene_id: scene.scene_id, role, sample, target: scene.target, decision: d })
            }));
        }
        write_decisions(&parts.join(format!("part-{:08}.parquet", chunk[0].scene_id)), &batch, &scenes)?;
        rows.extend(batch);
        finished += chunk.len();
        progress(finished, scenes.len());
    }
    rows.sort_by_key(|r| (r.scene_id, r.role, r.sample));
    write_decisions(&job.out.join(DECISIONS_FILE), &rows, &scenes)?;
    std::fs::remove_dir_all(&parts).map_err(|e| TrainerError::io(&parts, e))?;

    // 3. Uncertainty per scene and model, the noise filter, pairs and the selection.
    let failed_decisions = rows.iter().filter(|r| r.decision.is_failed()).count();
    let mut by_scene: HashMap<u32, [Vec<Decision>; 2]> = HashMap::new();
    for r in rows.into_iter().filter(|r| !r.decision.is_failed()) {
        by_scene.entry(r.scene_id).or_default()[r.role as usize].push(r.decision);
    }
    let mut measured = Vec::with_capacity(scenes.len());
    for scene in &scenes {
        let [t, s] = by_scene.remove(&scene.scene_id).unwrap_or_default();
        let (ut, us) = (uncertainty(&t, scene.target), uncertainty(&s, scene.target));
        measured.push((scene, ut, us, t, s));
    }
    write_uncertainty(&job.out.join("uncertainty.parquet"), &measured)?;
    let kept_noise: Vec<_> = measured.iter().filter(|m| m.1.hit_rate > 0.0 || m.2.hit_rate > 0.0).collect();
    let paired: Vec<_> = kept_noise.iter().filter_map(|m| pair(&m.3, &m.4, m.0.target).map(|p| (*m, p))).collect();
    let candidates: Vec<Candidate> = paired
        .iter()
        .map(|(m, _)| Candidate {
            scene_id: m.0.scene_id,
            dataset: m.0.dataset.clone(),
            choices: m.0.choices(),
            gap: m.2.expected_entropy - m.1.expected_entropy,
        })
        .collect();
    let selected = select(&candidates, c.top_k, c.select, seed);

    // 4. Training data: chosen decisions for SFT, (chosen, rejected) for DPO.
    let mut sft = Vec::with_capacity(selected.len());
    let mut dpo = Vec::with_capacity(selected.len());
    let mut choices = Vec::with_capacity(selected.len());
    let mut strata: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &selected {
        let ((scene, _, _, t, s), p) = paired[i];
        choices.push((*scene, mean_distribution(t)));
        let chosen = t[p.chosen].text.clone();
        let rejected = match p.rejected {
            (Role::Teacher, j) => t[j].text.clone(),
            (Role::Student, j) => s[j].text.clone(),
        };
        *strata.entry(format!("{}/{}", scene.dataset, scene.choices())).or_default() += 1;
        sft.push((scene, chosen.clone()));
        dpo.push((scene, chosen, rejected));
    }
    let common = |rows: &[&DecisionScene]| -> Vec<(&'static str, pq::ArrayRef)> {
        vec![
            ("scene_id", pq::u32_col(rows.iter().map(|s| s.scene_id))),
            ("dataset", pq::str_col(rows.iter().map(|s| &s.dataset))),
            ("system", pq::str_col(rows.iter().map(|_| DECISION_SYSTEM_PROMPT))),
            ("prompt", pq::str_col(rows.iter().map(|s| &s.prompt))),
        ]
    };
    let mut columns = common(&sft.iter().map(|r| *r.0).collect::<Vec<_>>());
    columns.push(("response", pq::str_col(sft.iter().map(|r| &r.1))));
    pq::write(&job.out.join("sft.parquet"), columns)?;
    let mut columns = common(&dpo.iter().map(|r| *r.0).collect::<Vec<_>>());
    columns.push(("chosen", pq::str_col(dpo.iter().map(|r| &r.1))));
    columns.push(("rejected", pq::str_col(dpo.iter().map(|r| &r.2))));
    pq::write(&job.out.join("dpo.parquet"), columns)?;
    // The teacher's choice distributions, soft targets for a student under the option readout
    // (its prompt alone, as it was trained).
    pq::write(
        &job.out.join(CHOICES_FILE),
        vec![
            ("scene_id", pq::u32_col(choices.iter().map(|c| c.0.scene_id))),
            ("dataset", pq::str_col(choices.iter().map(|c| &c.0.dataset))),
            ("prompt", pq::str_col(choices.iter().map(|c| &c.0.prompt))),
            ("choice_cnt", pq::u32_col(choices.iter().map(|c| c.0.choices() as u32))),
            ("target_pos", pq::u32_col(choices.iter().map(|c| c.0.target as u32))),
            ("teacher_probs", pq::f32_list_col(choices.iter().map(|c| c.1.as_slice()))),
        ],
    )?;

    let mean = |gaps: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = gaps.fold((0.0, 0usize), |(s, n), g| (s + g, n + 1));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    };
    let selection = Selection {
        teacher: settings.teacher,
        student: settings.student,
        mode: c.select,
        scenes_in: scenes.len(),
        failed_decisions,
        after_noise_filter: kept_noise.len(),
        with_pairs: paired.len(),
        selected: selected.len(),
        mean_gap_all: mean(&mut measured.iter().map(|m| m.2.expected_entropy - m.1.expected_entropy)),
        mean_gap_selected: mean(&mut selected.iter().map(|&i| candidates[i].gap)),
        strata,
    };
    write_json(&job.out.join(SELECTION_FILE), &selection)?;
    Ok(selection)
}

/// One row of `decisions.parquet`.
struct DecisionRow {
    scene_id: u32,
    role: Role,
    sample: usize,
    target: usize,
    decision: Decision,
}

fn write_decisions(path: &Path, rows: &[DecisionRow], scenes: &[DecisionScene]) -> Result<()> {
    let dataset: HashMap<u32, &str> = scenes.iter().map(|s| (s.scene_id, s.dataset.as_str())).collect();
    let letters: Vec<String> = rows.iter().map(|r| if r.decision.is_failed() { String::new() } else { letter(r.decision.sampled).to_string() }).collect();
    pq::write(
        path,
        vec![
            ("scene_id", pq::u32_col(rows.iter().map(|r| r.scene_id))),
            ("dataset", pq::str_col(rows.iter().map(|r| dataset.get(&r.scene_id).copied().unwrap_or("")))),
            ("role", pq::str_col(rows.iter().map(|r| r.role.name()))),
            ("sample", pq::u32_col(rows.iter().map(|r| r.sample as u32))),
            ("text", pq::str_col(rows.iter().map(|r| &r.decision.text))),
            ("letters", pq::f32_list_col(rows.iter().map(|r| r.decision.letters.as_slice()))),
            ("sampled_letter", pq::str_col(&letters)),
            ("sampled", pq::u32_col(rows.iter().map(|r| r.decision.sampled as u32))),
            ("target", pq::u32_col(rows.iter().map(|r| r.target as u32))),
            ("correct", pq::bool_col(rows.iter().map(|r| !r.decision.is_failed() && r.decision.sampled == r.target))),
            ("failed", pq::bool_col(rows.iter().map(|r| r.decision.is_failed()))),
        ],
    )?;
    Ok(())
}

fn read_decisions(path: &Path) -> Result<Vec<DecisionRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let t = Table::read(path)?;
    let (ids, roles, samples, texts, letters, sampled, targets) =
        (t.u32s("scene_id")?, t.strings("role")?, t.u32s("sample")?, t.strings("text")?, t.f32_lists("letters")?, t.u32s("sampled")?, t.u32s("target")?);
    let mut rows = Vec::with_capacity(ids.len());
    for (i, (((((id, role), sample), text), letters), sampled)) in ids.into_iter().zip(roles).zip(samples).zip(texts).zip(letters).zip(sampled).enumerate() {
        let role = match role.as_str() {
            "teacher" => Role::Teacher,
            "student" => Role::Student,
            other => return Err(TrainerError::record(path, i, format!("role `{other}`, expected teacher or student"))),
        };
        rows.push(DecisionRow {
            scene_id: id,
            role,
            sample: sample as usize,
            target: targets[i] as usize,
            decision: Decision { text, letters, sampled: sampled as usize },
        });
    }
    Ok(rows)
}

/// Finished part files (a crash mid-write leaves only a temporary file, which is ignored).
fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainerError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet")))
        .collect();
    parts.sort();
    Ok(parts)
}

type Measured<'a> = (&'a DecisionScene, Uncertainty, Uncertainty, Vec<Decision>, Vec<Decision>);

fn write_uncertainty(path: &Path, measured: &[Measured]) -> Result<()> {
    let rows: Vec<(&DecisionScene, Role, Uncertainty, f64)> = measured
        .iter()
        .flat_map(|(s, t, u, _, _)| {
            let gap = u.expected_entropy - t.expected_entropy;
            [(*s, Role::Teacher, *t, gap), (*s, Role::Student, *u, gap)]
        })
        .collect();
    pq::write(
        path,
        vec![
            ("scene_id", pq::u32_col(rows.iter().map(|r| r.0.scene_id))),
            ("dataset", pq::str_col(rows.iter().map(|r| &r.0.dataset))),
            ("choice_cnt", pq::u32_col(rows.iter().map(|r| r.0.choices() as u32))),
            ("role", pq::str_col(rows.iter().map(|r| r.1.name()))),
            ("expected_entropy", pq::f64_col(rows.iter().map(|r| r.2.expected_entropy))),
            ("total_entropy", pq::f64_col(rows.iter().map(|r| r.2.total_entropy))),
            ("mutual_information", pq::f64_col(rows.iter().map(|r| r.2.mutual_information))),
            ("hit_rate", pq::f64_col(rows.iter().map(|r| r.2.hit_rate))),
            ("gap", pq::f64_col(rows.iter().map(|r| r.3))),
        ],
    )?;
    Ok(())
}
