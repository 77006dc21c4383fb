//! Alignment accuracy (METHODS.md section 4): how often a simulator picks the item the user
//! really chose in a scene, as argmax accuracy and as sampled accuracy (letters drawn from the
//! simulator's distribution), per dataset and overall, with the random baseline 1/k, the
//! accuracy by the target's position in the list (position bias) and the expected
//! calibration error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use simforge_data::parquet_io::Table;
use simforge_data::rng::{argmax, Rng};
use simforge_data::scenes::render_prompt;
use simforge_data::tables::Split;
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::burn::tensor::Device;
use simforge_trainer::distill::open_teacher;
use simforge_trainer::distill::oracle::OracleTeacher;
use simforge_trainer::distill::teacher::{read_decision_scenes, Decision, DecisionScene, Teacher, ANSWER_CUE};
use simforge_trainer::inference::SamplingOptions;
use simforge_trainer::readout::ReadoutModel;

use crate::error::{EvalError, Result};
use crate::llm::{open_llm, LetterAsk, Llm};
use crate::report::MarkdownTable;

/// One scene to answer: the user message and where the real choice is among `choices` options.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignmentScene {
    pub dataset: String,
    pub prompt: String,
    pub choices: usize,
    pub target: usize,
    /// Who chose among which items, where the source says (simforge scenes do).
    pub source: Option<DecisionScene>,
}

/// The scenes of a simforge `scenes.parquet` (columns `prompt`, `target_pos`, `choice_cnt`,
/// `dataset`; with `split`, only rows of that split), or of the published UserMirrorer
/// evaluation set (`.jsonl`/`.json` lines, read by [`read_published_scenes`]).
pub fn read_scenes(path: &Path, split: Option<Split>) -> Result<Vec<AlignmentScene>> {
    if path.extension().is_some_and(|e| e == "jsonl" || e == "json") {
        return read_published_scenes(path);
    }
    let table = Table::read(path)?;
    let prompts = table.strings("prompt")?;
    let targets = table.u32s("target_pos")?;
    let choices = table.u32s("choice_cnt")?;
    let datasets = table.strings("dataset").unwrap_or_else(|_| vec!["scenes".into(); prompts.len()]);
    let splits = table.strings("split").ok();
    let mut scenes = Vec::new();
    for (row, (((prompt, target), choices), dataset)) in prompts.into_iter().zip(targets).zip(choices).zip(datasets).enumerate() {
        if split.is_some_and(|want| splits.as_ref().is_some_and(|s| s[row] != want.name())) {
            continue;
        }
        if !(2..=26).contains(&choices) || target >= choices {
            return Err(EvalError::record(
                path,
                row,
                format!("target_pos {target} with choice_cnt {choices}; expected 2 to 26 options and the target among them"),
            ));
        }
        scenes.push(AlignmentScene { dataset, prompt, choices: choices as usize, target: target as usize, source: None });
    }
    if table.u32_lists("exposure").is_ok() {
        let sources = read_decision_scenes(path, split)?;
        for (scene, source) in scenes.iter_mut().zip(sources) {
            scene.source = Some(source);
        }
    }
    Ok(scenes)
}

/// One line of the published UserMirrorer evaluation set.
#[derive(Deserialize)]
struct PublishedScene {
    text: PublishedText,
    item_pos: usize,
    choice_cnt: usize,
    #[serde(default)]
    dataset: Option<String>,
}

#[derive(Deserialize)]
struct PublishedText {
    profile: String,
    history: String,
    action_list: Vec<String>,
}

/// The published evaluation set (JSON lines with `text{profile, history, action_list}`,
/// `item_pos`, `choice_cnt`, `dataset`), its user message laid out as the published code does.
pub fn read_published_scenes(path: &Path) -> Result<Vec<AlignmentScene>> {
    let text = std::fs::read_to_string(path).map_err(|e| simforge_data::DataError::io(path, e))?;
    let mut scenes = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at =
            |expected: &str, found: String| simforge_data::DataError::Parse { path: path.to_path_buf(), line: i as u64 + 1, expected: expected.into(), found };
        let row: PublishedScene = serde_json::from_str(line).map_err(|e| at("a UserMirrorer evaluation record", e.to_string()))?;
        let k = row.text.action_list.len();
        if k != row.choice_cnt || !(2..=26).contains(&k) || row.item_pos >= k {
            return Err(at(
                "2 to 26 actions, choice_cnt their number and item_pos among them",
                format!("choice_cnt {} with {k} actions and item_pos {}", row.choice_cnt, row.item_pos),
            )
            .into());
        }
        let actions: Vec<String> = row.text.action_list.iter().enumerate().map(|(j, a)| format!("[{}] {a}", simforge_data::scenes::letter(j))).collect();
        let prompt = format!("{}\n", render_prompt(&row.text.profile, &row.text.history, &actions));
        scenes.push(AlignmentScene { dataset: row.dataset.unwrap_or_else(|| "published".into()), prompt, choices: k, target: row.item_pos, source: None });
    }
    Ok(scenes)
}

/// Accuracy of one group of scenes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Accuracy {
    pub scenes: usize,
    pub argmax_accuracy: f64,
    pub sampled_accuracy: f64,
    /// Mean of 1/k over the scenes.
    pub random_baseline: f64,
    /// Expected calibration error of the argmax choice (10 equal-width confidence bins).
    pub ece: f64,
    /// Mean log-probability the simulator gives the real choice (probabilities floored at
    /// 1e-10): what it says about the logged behaviour, beyond its top pick.
    pub log_likelihood: f64,
    /// Synthetic world only: the mean KL divergence from the world's true choice distribution
    /// over the shown options to the simulator's (0 for the world's own choice model). It
    /// measures the simulated user, not the one logged choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl_to_oracle: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PositionAccuracy {
    /// The target's letter.
    pub position: String,
    pub scenes: usize,
    pub argmax_accuracy: f64,
    /// How often the simulator picks this letter at all (over scenes that have it).
    pub chosen_share: f64,
}

/// `report.json` of `simforge eval alignment`.
#[derive(Debug, Clone, Serialize)]
pub struct AlignmentReport {
    pub simulator: String,
    pub mode: AlignmentMode,
    pub samples: usize,
    pub overall: Accuracy,
    pub datasets: BTreeMap<String, Accuracy>,
    pub by_target_position: Vec<PositionAccuracy>,
}

/// Scores each scene's options: the distribution over its letters.
pub trait OptionScorer {
    fn option_probabilities(&mut self, scenes: &[AlignmentScene]) -> Result<Vec<Vec<f32>>>;
}

/// A simulator that reasons first: a teacher's sampled decisions, each read as a letter
/// distribution after `Behavior: [`, averaged.
pub struct ReasoningSimulator {
    pub teacher: Box<dyn Teacher>,
    pub samples: usize,
    pub seed: u64,
}

impl OptionScorer for ReasoningSimulator {
    fn option_probabilities(&mut self, scenes: &[AlignmentScene]) -> Result<Vec<Vec<f32>>> {
        let sources = scenes
            .iter()
            .map(|s| {
                s.source.clone().ok_or_else(|| EvalError::settings("reasoning mode", "needs simforge scenes (with user_id, exposure and target_item columns)"))
            })
            .collect::<Result<Vec<_>>>()?;
        let seed = Rng::stream(self.seed, "reasoning", sources.first().map_or(0, |s| u64::from(s.scene_id))).next_u64();
        let decisions = self.teacher.decide(&sources, self.samples.max(1), seed)?;
        // A failed decision (a malformed reply) has no letters; a scene with none left is a
        // guess, each option alike.
        Ok(decisions
            .iter()
            .zip(&sources)
            .map(|(ds, scene)| {
                let read: Vec<&Decision> = ds.iter().filter(|d| !d.is_failed()).collect();
                let k = scene.choices();
                if read.is_empty() {
                    return vec![1.0 / k as f32; k];
                }
                (0..k).map(|i| read.iter().map(|d| d.letters[i]).sum::<f32>() / read.len() as f32).collect()
            })
            .collect())
    }
}

/// A language model answering directly: the chat prompt, Qwen3's empty think block, then
/// `Behavior: [` and the next-token distribution over the option letters.
pub struct DirectAnswers {
    pub llm: Box<dyn Llm>,
}

impl OptionScorer for DirectAnswers {
    fn option_probabilities(&mut self, scenes: &[AlignmentScene]) -> Result<Vec<Vec<f32>>> {
        let asks: Vec<LetterAsk> = scenes.iter().map(|s| LetterAsk { system: None, user: s.prompt.clone(), cue: ANSWER_CUE, choices: s.choices }).collect();
        self.llm.letters(&asks)
    }
}

impl OptionScorer for ReadoutModel {
    fn option_probabilities(&mut self, scenes: &[AlignmentScene]) -> Result<Vec<Vec<f32>>> {
        let asks: Vec<(&str, usize)> = scenes.iter().map(|s| (s.prompt.as_str(), s.choices)).collect();
        Ok(self.choice_distributions(&asks)?)
    }
}

/// Scores every scene in batches of `batch_size`, calling `progress(done, total)`.
pub fn score_scenes(
    scorer: &mut dyn OptionScorer,
    scenes: &[AlignmentScene],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(scenes.len());
    for chunk in scenes.chunks(batch_size.max(1)) {
        out.extend(scorer.option_probabilities(chunk)?);
        progress(out.len(), scenes.len());
    }
    Ok(out)
}

/// How a simulator answers: at once, or after writing EKB decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignmentMode {
    /// The letter right after `Behavior: [`.
    Direct,
    /// Decisions written first, their letter distributions averaged.
    Reasoning,
    /// A model trained under the option readout: one score at the end of each option's line
    /// (asked to answer directly, such a model answers so).
    Options,
}

impl std::fmt::Display for AlignmentMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlignmentMode::Direct => "direct",
            AlignmentMode::Reasoning => "reasoning",
            AlignmentMode::Options => "options",
        })
    }
}

/// How simulators are asked and scored (`simforge eval alignment`, a recipe's `[alignment]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlignmentConfig {
    /// Letters drawn per scene for the sampled accuracy (reasoning mode: also the decisions
    /// written per scene).
    pub samples: usize,
    /// The first N scenes (all when unset).
    pub max_scenes: Option<usize>,
    /// Scenes per batch of model calls.
    pub batch_size: usize,
    /// Longest rationale in reasoning mode, in tokens.
    pub max_new_tokens: usize,
    pub seed: Option<u64>,
    /// How `openai` simulators talk to their endpoint.
    pub endpoint: EndpointSettings,
}

impl Default for AlignmentConfig {
    fn default() -> Self {
        Self { samples: 5, max_scenes: None, batch_size: 16, max_new_tokens: 160, seed: None, endpoint: EndpointSettings::default() }
    }
}

/// The alignment report of the simulator `spec` (reported as `label`) on `scenes`; `data` is
/// the prepared dataset (for the oracle and the ensemble). A model answers in `mode`; the
/// oracle, the ensemble and batch files always reason.
pub fn evaluate_alignment(
    label: &str,
    spec: &AgentSpec,
    mode: AlignmentMode,
    data: Option<&Path>,
    scenes: &[AlignmentScene],
    config: &AlignmentConfig,
    device: &Device,
) -> Result<AlignmentReport> {
    let scenes = &scenes[..scenes.len().min(config.max_scenes.unwrap_or(usize::MAX))];
    if scenes.is_empty() {
        return Err(EvalError::settings("alignment", "no scenes to evaluate"));
    }
    let seed = config.seed.unwrap_or(0);
    let direct = mode == AlignmentMode::Direct && matches!(spec, AgentSpec::Local(_) | AgentSpec::OpenAi { .. });
    // A model trained under the option readout answers by it, whatever it was asked.
    let readout = match spec {
        AgentSpec::Local(dir) => ReadoutModel::load(dir, device)?,
        _ => None,
    };
    if readout.is_none() && mode == AlignmentMode::Options {
        return Err(EvalError::settings("alignment", format!("{spec} was not trained under the option readout (its folder has no option_readout.json)")));
    }
    let mode = if readout.is_some() {
        AlignmentMode::Options
    } else if direct {
        AlignmentMode::Direct
    } else {
        AlignmentMode::Reasoning
    };
    let mut simulator: Box<dyn OptionScorer> = if let Some(readout) = readout {
        Box::new(readout)
    } else if direct {
        Box::new(DirectAnswers { llm: open_llm(spec, "simulator", &config.endpoint, device)? })
    } else {
        let sampling = SamplingOptions { max_new_tokens: config.max_new_tokens, temperature: 1.0, top_p: 0.9, ..SamplingOptions::default() };
        let teacher = open_teacher(spec, "simulator", data, &sampling, &config.endpoint, device)?;
        Box::new(ReasoningSimulator { teacher, samples: config.samples, seed })
    };
    let batch = config.batch_size;
    let probs = score_scenes(simulator.as_mut(), scenes, batch, &mut |done, total| {
        if done % (batch * 25).max(1) < batch || done == total {
            tracing::info!("{label}: scored {done} of {total} scenes");
        }
    })?;
    let truth = true_choices(data, scenes)?;
    Ok(alignment_report(label, mode, scenes, &probs, truth.as_deref(), config.samples, seed))
}

/// The world's true choice distribution of every scene, where `data` is a synthetic world and
/// the scenes say who chose among what.
fn true_choices(data: Option<&Path>, scenes: &[AlignmentScene]) -> Result<Option<Vec<Vec<f64>>>> {
    let Some(data) = data.filter(|d| d.join(simforge_data::sources::synthetic::WORLD_FILE).is_file()) else { return Ok(None) };
    let Some(sources) = scenes.iter().map(|s| s.source.as_ref()).collect::<Option<Vec<_>>>() else { return Ok(None) };
    let oracle = OracleTeacher::load(data)?;
    Ok(Some(sources.into_iter().map(|s| oracle.choice_probabilities(s)).collect::<simforge_trainer::Result<_>>()?))
}

/// The report for `scenes` given each one's option distribution; sampled accuracy draws
/// `samples` letters per scene from a generator seeded by `seed`. `truth`, where known (the
/// synthetic world), is each scene's true choice distribution.
pub fn alignment_report(
    simulator: &str,
    mode: AlignmentMode,
    scenes: &[AlignmentScene],
    probs: &[Vec<f32>],
    truth: Option<&[Vec<f64>]>,
    samples: usize,
    seed: u64,
) -> AlignmentReport {
    struct Outcome {
        correct: bool,
        confidence: f64,
        sampled_hits: f64,
        chosen: usize,
        log_likelihood: f64,
        kl: Option<f64>,
    }
    let floor = |p: f32| f64::from(p).max(1e-10);
    let outcomes: Vec<Outcome> = scenes
        .iter()
        .zip(probs)
        .enumerate()
        .map(|(i, (scene, p))| {
            let chosen = argmax(p);
            let mut rng = Rng::stream(seed, "sampled-choice", i as u64);
            let weights: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
            let hits = (0..samples).filter(|_| rng.weighted(&weights) == scene.target).count();
            let kl = truth.map(|t| t[i].iter().zip(p).filter(|(o, _)| **o > 0.0).map(|(o, &s)| o * (o / floor(s)).ln()).sum());
            Outcome {
                correct: chosen == scene.target,
                confidence: f64::from(p[chosen]),
                sampled_hits: hits as f64 / samples.max(1) as f64,
                chosen,
                log_likelihood: floor(p[scene.target]).ln(),
                kl,
            }
        })
        .collect();
    let accuracy = |members: &[usize]| -> Accuracy {
        let n = members.len().max(1) as f64;
        let mut bins = [(0usize, 0.0f64, 0.0f64); 10];
        for &m in members {
            let o = &outcomes[m];
            let bin = &mut bins[((o.confidence * 10.0) as usize).min(9)];
            bin.0 += 1;
            bin.1 += f64::from(u8::from(o.correct));
            bin.2 += o.confidence;
        }
        Accuracy {
            scenes: members.len(),
            argmax_accuracy: members.iter().filter(|&&m| outcomes[m].correct).count() as f64 / n,
            sampled_accuracy: members.iter().map(|&m| outcomes[m].sampled_hits).sum::<f64>() / n,
            random_baseline: members.iter().map(|&m| 1.0 / scenes[m].choices as f64).sum::<f64>() / n,
            ece: bins.iter().filter(|b| b.0 > 0).map(|b| (b.1 - b.2).abs()).sum::<f64>() / n,
            log_likelihood: members.iter().map(|&m| outcomes[m].log_likelihood).sum::<f64>() / n,
            kl_to_oracle: truth.map(|_| members.iter().filter_map(|&m| outcomes[m].kl).sum::<f64>() / n),
        }
    };
    let all: Vec<usize> = (0..scenes.len()).collect();
    let mut by_dataset: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in scenes.iter().enumerate() {
        by_dataset.entry(s.dataset.clone()).or_default().push(i);
    }
    let widest = scenes.iter().map(|s| s.choices).max().unwrap_or(0);
    let by_target_position = (0..widest)
        .map(|pos| {
            let with_target: Vec<usize> = all.iter().copied().filter(|&i| scenes[i].target == pos).collect();
            let having = all.iter().filter(|&&i| scenes[i].choices > pos).count();
            PositionAccuracy {
                position: simforge_data::scenes::letter(pos).to_string(),
                scenes: with_target.len(),
                argmax_accuracy: with_target.iter().filter(|&&i| outcomes[i].correct).count() as f64 / with_target.len().max(1) as f64,
                chosen_share: all.iter().filter(|&&i| outcomes[i].chosen == pos).count() as f64 / having.max(1) as f64,
            }
        })
        .collect();
    AlignmentReport {
        simulator: simulator.into(),
        mode,
        samples,
        overall: accuracy(&all),
        datasets: by_dataset.iter().map(|(name, members)| (name.clone(), accuracy(members))).collect(),
        by_target_position,
    }
}

impl AlignmentReport {
    /// A Markdown table per dataset and by target position.
    pub fn markdown(&self) -> String {
        let mut accuracy = MarkdownTable::new(&["dataset", "scenes", "argmax", "sampled", "random 1/k", "ECE", "log-likelihood", "KL to truth"]);
        for (name, a) in self.datasets.iter().chain([(&"**overall**".to_owned(), &self.overall)]) {
            accuracy.row(&[
                name.clone(),
                a.scenes.to_string(),
                format!("{:.4}", a.argmax_accuracy),
                format!("{:.4}", a.sampled_accuracy),
                format!("{:.4}", a.random_baseline),
                format!("{:.4}", a.ece),
                format!("{:.4}", a.log_likelihood),
                a.kl_to_oracle.map_or("—".into(), |k| format!("{k:.4}")),
            ]);
        }
        let mut positions = MarkdownTable::new(&["position", "scenes", "argmax accuracy", "chosen share"]);
        for p in &self.by_target_position {
            positions.row(&[p.position.clone(), p.scenes.to_string(), format!("{:.4}", p.argmax_accuracy), format!("{:.4}", p.chosen_share)]);
        }
        format!(
            "# Alignment accuracy\n\nSimulator `{}`, {} mode, sampled accuracy over {} draws per scene.\n\n{}\n## By the real choice's position\n\n{}",
            self.simulator,
            self.mode,
            self.samples,
            accuracy.render(),
            positions.render()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(dataset: &str, choices: usize, target: usize) -> AlignmentScene {
        AlignmentScene { dataset: dataset.into(), prompt: String::new(), choices, target, source: None }
    }

    #[test]
    fn accuracies_baseline_and_calibration_of_known_distributions() {
        let scenes = vec![scene("a", 2, 0), scene("a", 4, 1), scene("b", 5, 4)];
        let probs = vec![vec![1.0, 0.0], vec![0.7, 0.1, 0.1, 0.1], vec![0.2; 5]];
        let truth = vec![vec![1.0, 0.0], vec![0.25; 4], vec![0.2; 5]];
        let r = alignment_report("m", AlignmentMode::Direct, &scenes, &probs, Some(&truth), 200, 1);
        assert_eq!(r.overall.scenes, 3);
        // Scene 0 right with certainty, scene 1 wrong, scene 2 a tie that picks A (wrong).
        assert!((r.overall.argmax_accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.overall.random_baseline - (0.5 + 0.25 + 0.2) / 3.0).abs() < 1e-12);
        // Sampled accuracy tends to the mean target probability (1 + 0.1 + 0.2) / 3.
        assert!((r.overall.sampled_accuracy - 1.3 / 3.0).abs() < 0.05, "{}", r.overall.sampled_accuracy);
        assert_eq!(r.datasets["a"].scenes, 2);
        assert_eq!(r.datasets["b"].argmax_accuracy, 0.0);
        // Bins: confidence 1.0 right (gap 0), 0.7 wrong (gap 0.7), 0.2 wrong (gap 0.2).
        assert!((r.overall.ece - 0.9 / 3.0).abs() < 1e-6, "{}", r.overall.ece);
        assert_eq!(r.by_target_position[0].chosen_share, 1.0, "A is picked whenever offered");
        assert_eq!(r.by_target_position[4].scenes, 1);
        // ln 1, ln 0.1, ln 0.2 averaged; KL 0 (certain and right), KL(uniform ‖ [.7,.1,.1,.1]), 0 (equal).
        assert!((r.overall.log_likelihood - (0.1f64.ln() + 0.2f64.ln()) / 3.0).abs() < 1e-6, "{}", r.overall.log_likelihood);
        let kl = 0.25 * ((0.25f64 / 0.7).ln() + 3.0 * (0.25f64 / 0.1).ln());
        assert!((r.overall.kl_to_oracle.expect("truth given") - kl / 3.0).abs() < 1e-6, "{:?}", r.overall.kl_to_oracle);
    }

    #[test]
    fn the_published_evaluation_format_reads_into_scenes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eval.jsonl");
        let line = r#"{"text": {"profile": "Likes jazz.", "history": "- Kind of Blue", "action_list": ["A Love Supreme", "Thriller", "Abbey Road"]}, "item_pos": 2, "choice_cnt": 3, "dataset": "lastfm"}"#;
        std::fs::write(&path, format!("{line}\n\n{line}\n")).expect("write");
        let scenes = read_scenes(&path, Some(Split::Eval)).expect("read");
        assert_eq!(scenes.len(), 2);
        assert_eq!((scenes[0].choices, scenes[0].target, scenes[0].dataset.as_str()), (3, 2, "lastfm"));
        assert_eq!(
            scenes[0].prompt,
            "# User Profile\nLikes jazz.\n\n## History\n- Kind of Blue\n\n# Exposure List\n[A] A Love Supreme\n[B] Thriller\n[C] Abbey Road\n"
        );
        std::fs::write(&path, line.replace("\"item_pos\": 2", "\"item_pos\": 3")).expect("write");
        let err = read_scenes(&path, None).expect_err("target outside the list").to_string();
        assert!(err.contains("eval.jsonl:1") && err.contains("item_pos 3"), "{err}");
    }
}
