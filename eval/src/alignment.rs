//! Alignment accuracy (METHODS.md section 4): how often a simulator picks the item the user
//! really chose in a scene, as argmax accuracy and as sampled accuracy (letters drawn from the
//! simulator's distribution), per dataset and overall, with the random baseline 1/k, the
//! accuracy by the target's position in the list (position bias) and the expected
//! calibration error.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use simforge_data::parquet_io::Table;
use simforge_data::rng::Rng;
use simforge_trainer::distill::teacher::{option_distributions, read_decision_scenes, DecisionScene, Teacher, ANSWER_CUE};
use simforge_trainer::inference::LanguageModel;
use simforge_trainer::tokenizer::{answer_prompt, Message, Tokenizer};

use crate::error::{EvalError, Result};

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
pub fn read_scenes(path: &Path, split: Option<&str>) -> Result<Vec<AlignmentScene>> {
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
        if split.is_some_and(|want| splits.as_ref().is_some_and(|s| s[row] != want)) {
            continue;
        }
        if !(2..=26).contains(&choices) || target >= choices {
            return Err(EvalError::Invalid(format!("{} row {row}: target_pos {target} with choice_cnt {choices}; expected 2 to 26 options and the target among them", path.display())));
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
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Invalid(format!("{}: {e}", path.display())))?;
    let mut scenes = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |what: String| EvalError::Invalid(format!("{}:{}: {what}", path.display(), i + 1));
        let row: PublishedScene = serde_json::from_str(line).map_err(|e| at(format!("expected a UserMirrorer evaluation record ({e})")))?;
        let k = row.text.action_list.len();
        if k != row.choice_cnt || !(2..=26).contains(&k) || row.item_pos >= k {
            return Err(at(format!("choice_cnt {} with {k} actions and item_pos {}; expected 2 to 26 actions, item_pos among them", row.choice_cnt, row.item_pos)));
        }
        let actions: Vec<String> = row.text.action_list.iter().enumerate().map(|(j, a)| format!("[{}] {a}", simforge_data::scenes::letter(j))).collect();
        let prompt = format!("# User Profile\n{}\n\n## History\n{}\n\n# Exposure List\n{}\n", row.text.profile, row.text.history, actions.join("\n"));
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
    pub mode: String,
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
            .map(|s| s.source.clone().ok_or_else(|| EvalError::Invalid("reasoning mode needs simforge scenes (with user_id, exposure and target_item columns)".into())))
            .collect::<Result<Vec<_>>>()?;
        let seed = Rng::stream(self.seed, "reasoning", sources.first().map_or(0, |s| u64::from(s.scene_id))).next_u64();
        let decisions = self.teacher.decide(&sources, self.samples.max(1), seed)?;
        Ok(decisions
            .iter()
            .map(|ds| {
                let n = ds.len().max(1) as f32;
                let width = ds.first().map_or(0, |d| d.letters.len());
                (0..width).map(|k| ds.iter().map(|d| d.letters[k]).sum::<f32>() / n).collect()
            })
            .collect())
    }
}

/// A simforge model answering directly: the chat prompt, Qwen3's empty think block, then
/// `Behavior: [` and the next-token distribution over the option letters.
pub struct LmSimulator {
    pub lm: LanguageModel,
    pub tokenizer: Tokenizer,
}

impl LmSimulator {
    pub fn load(dir: &Path, device: &simforge_trainer::burn::tensor::Device) -> Result<Self> {
        let lm = LanguageModel::load(dir, device)?;
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        Ok(Self { lm, tokenizer })
    }

    fn prompt_ids(&self, scene: &AlignmentScene) -> Result<Vec<u32>> {
        let messages = [Message { role: "user".into(), content: scene.prompt.clone() }];
        Ok(self.tokenizer.encode(&(answer_prompt(&messages) + ANSWER_CUE))?)
    }
}

impl OptionScorer for LmSimulator {
    fn option_probabilities(&mut self, scenes: &[AlignmentScene]) -> Result<Vec<Vec<f32>>> {
        let prompts = scenes.iter().map(|s| self.prompt_ids(s)).collect::<Result<Vec<_>>>()?;
        let choices: Vec<usize> = scenes.iter().map(|s| s.choices).collect();
        Ok(option_distributions(&self.lm, &self.tokenizer, &prompts, &choices)?)
    }
}

/// Scores every scene in batches of `batch_size`, calling `progress(done, total)`.
pub fn score_scenes(scorer: &mut dyn OptionScorer, scenes: &[AlignmentScene], batch_size: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(scenes.len());
    for chunk in scenes.chunks(batch_size.max(1)) {
        out.extend(scorer.option_probabilities(chunk)?);
        progress(out.len(), scenes.len());
    }
    Ok(out)
}

/// The report for `scenes` given each one's option distribution; sampled accuracy draws
/// `samples` letters per scene from a generator seeded by `seed`.
pub fn alignment_report(simulator: &str, mode: &str, scenes: &[AlignmentScene], probs: &[Vec<f32>], samples: usize, seed: u64) -> AlignmentReport {
    struct Outcome {
        correct: bool,
        confidence: f64,
        sampled_hits: f64,
        chosen: usize,
    }
    let outcomes: Vec<Outcome> = scenes
        .iter()
        .zip(probs)
        .enumerate()
        .map(|(i, (scene, p))| {
            let chosen = p.iter().enumerate().fold(0, |best, (j, &x)| if x > p[best] { j } else { best });
            let mut rng = Rng::stream(seed, "sampled-choice", i as u64);
            let hits = (0..samples).filter(|_| sample(&mut rng, p) == scene.target).count();
            Outcome { correct: chosen == scene.target, confidence: f64::from(p[chosen]), sampled_hits: hits as f64 / samples.max(1) as f64, chosen }
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
        mode: mode.into(),
        samples,
        overall: accuracy(&all),
        datasets: by_dataset.iter().map(|(name, members)| (name.clone(), accuracy(members))).collect(),
        by_target_position,
    }
}

fn sample(rng: &mut Rng, p: &[f32]) -> usize {
    let mut u = rng.f64() * p.iter().map(|&x| f64::from(x)).sum::<f64>();
    for (i, &x) in p.iter().enumerate() {
        u -= f64::from(x);
        if u < 0.0 {
            return i;
        }
    }
    p.len() - 1
}

impl AlignmentReport {
    /// A Markdown table per dataset and by target position.
    pub fn markdown(&self) -> String {
        let mut md = format!("# Alignment accuracy\n\nSimulator `{}`, {} mode, sampled accuracy over {} draws per scene.\n\n| dataset | scenes | argmax | sampled | random 1/k | ECE |\n|---|---|---|---|---|---|\n", self.simulator, self.mode, self.samples);
        let row = |name: &str, a: &Accuracy| format!("| {name} | {} | {:.4} | {:.4} | {:.4} | {:.4} |\n", a.scenes, a.argmax_accuracy, a.sampled_accuracy, a.random_baseline, a.ece);
        for (name, a) in &self.datasets {
            md.push_str(&row(name, a));
        }
        md.push_str(&row("**overall**", &self.overall));
        md.push_str("\n## By the real choice's position\n\n| position | scenes | argmax accuracy | chosen share |\n|---|---|---|---|\n");
        for p in &self.by_target_position {
            md.push_str(&format!("| {} | {} | {:.4} | {:.4} |\n", p.position, p.scenes, p.argmax_accuracy, p.chosen_share));
        }
        md
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
        let r = alignment_report("m", "direct", &scenes, &probs, 200, 1);
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
    }

    #[test]
    fn the_published_evaluation_format_reads_into_scenes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eval.jsonl");
        let line = r#"{"text": {"profile": "Likes jazz.", "history": "- Kind of Blue", "action_list": ["A Love Supreme", "Thriller", "Abbey Road"]}, "item_pos": 2, "choice_cnt": 3, "dataset": "lastfm"}"#;
        std::fs::write(&path, format!("{line}\n\n{line}\n")).expect("write");
        let scenes = read_scenes(&path, Some("eval")).expect("read");
        assert_eq!(scenes.len(), 2);
        assert_eq!((scenes[0].choices, scenes[0].target, scenes[0].dataset.as_str()), (3, 2, "lastfm"));
        assert_eq!(scenes[0].prompt, "# User Profile\nLikes jazz.\n\n## History\n- Kind of Blue\n\n# Exposure List\n[A] A Love Supreme\n[B] Thriller\n[C] Abbey Road\n");
        std::fs::write(&path, line.replace("\"item_pos\": 2", "\"item_pos\": 3")).expect("write");
        let err = read_scenes(&path, None).expect_err("target outside the list").to_string();
        assert!(err.contains("eval.jsonl:1") && err.contains("item_pos 3"), "{err}");
    }
}
