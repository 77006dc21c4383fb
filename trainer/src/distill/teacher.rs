//! Teachers (METHODS.md section 4): given scenes, each writes sampled EKB decisions, and for
//! every decision the distribution over the option letters after `Behavior: [`.

use std::path::Path;

use simforge_data::parquet_io::Table;
use simforge_data::rng::Rng;
use simforge_data::scenes::letter;
use simforge_data::tables::Split;

use crate::error::{Result, TrainerError};
use crate::inference::{LanguageModel, SamplingOptions};
use crate::tokenizer::{answer_prompt, assistant_content, without_turn_end, Message, Tokenizer};

/// The system prompt of a decision: the EKB consumer-behaviour model, in the first person.
pub const DECISION_SYSTEM_PROMPT: &str = "You are the user described below, looking at an exposure list. Decide which one item you choose, thinking in the first person, in this format:\nStimulus: 1-3 internal states or external cues that draw you to an item.\nKnowledge: 2-4 things you weigh (product attributes, information sources, your past experience).\nEvaluation: how you weigh them, and your style (logical, intuitive, impulsive or habitual).\nBehavior: [X], the letter of the item you choose.";

/// Where a decision's answer starts; the letter distribution is read right after it.
pub const ANSWER_CUE: &str = "Behavior: [";

/// One training scene as the teachers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionScene {
    pub scene_id: u32,
    pub dataset: String,
    pub user_id: u32,
    pub target_item: u32,
    /// When the real choice happened (the history is what came before).
    pub timestamp: i64,
    /// Canonical item ids, in letter order.
    pub exposure: Vec<u32>,
    /// The user message (profile, history, lettered exposure list).
    pub prompt: String,
    /// Index of the real choice in `exposure`.
    pub target: usize,
}

impl DecisionScene {
    pub fn choices(&self) -> usize {
        self.exposure.len()
    }
}

/// The scenes of a `scenes.parquet` split (all rows without a split or a `split` column).
pub fn read_decision_scenes(path: &Path, split: Option<Split>) -> Result<Vec<DecisionScene>> {
    let table = Table::read(path)?;
    let splits = table.strings("split").ok();
    let ids = table.u32s("scene_id")?;
    let datasets = table.strings("dataset")?;
    let users = table.u32s("user_id")?;
    let targets = table.u32s("target_item")?;
    let times = table.i64s("timestamp")?;
    let exposures = table.u32_lists("exposure")?;
    let prompts = table.strings("prompt")?;
    let positions = table.u32s("target_pos")?;
    let mut scenes = Vec::new();
    for row in 0..table.rows() {
        if split.is_some_and(|want| splits.as_ref().is_some_and(|s| s[row] != want.name())) {
            continue;
        }
        let target = positions[row] as usize;
        if !(2..=26).contains(&exposures[row].len()) || exposures[row].get(target) != Some(&targets[row]) {
            return Err(TrainerError::record(
                path,
                row,
                format!("expected 2 to 26 exposed items with the target item {} at target_pos {target}", targets[row]),
            ));
        }
        scenes.push(DecisionScene {
            scene_id: ids[row],
            dataset: datasets[row].clone(),
            user_id: users[row],
            target_item: targets[row],
            timestamp: times[row],
            exposure: exposures[row].clone(),
            prompt: prompts[row].clone(),
            target,
        });
    }
    Ok(scenes)
}

/// One sampled decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The rationale, ending in `Behavior: [X]`.
    pub text: String,
    /// P(option | scene ⊕ rationale), over the scene's options.
    pub letters: Vec<f32>,
    /// The option the decision picked.
    pub sampled: usize,
}

impl Decision {
    /// A sample the teacher could not give (a malformed reply): kept in `decisions.parquet`
    /// with the reason as its text, left out of the uncertainty and the pairs.
    pub fn failed(reason: String) -> Self {
        Self { text: reason, letters: Vec::new(), sampled: 0 }
    }

    pub fn is_failed(&self) -> bool {
        self.letters.is_empty()
    }
}

/// A source of decisions: a strong teacher, or the student being distilled.
pub trait Teacher {
    /// How reports and tables name it.
    fn name(&self) -> String;
    /// `samples` decisions for each scene, in order. The same scenes, samples and seed give
    /// the same decisions.
    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>>;
}

/// A model trained under the option readout as a distillation student: each decision is its
/// choice distribution (no rationale; the same for every sample) and an option drawn from it.
impl Teacher for crate::readout::ReadoutModel {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>> {
        let asks: Vec<(&str, usize)> = scenes.iter().map(|s| (s.prompt.as_str(), s.choices())).collect();
        let distributions = self.choice_distributions(&asks)?;
        Ok(scenes
            .iter()
            .zip(distributions)
            .map(|(scene, letters)| {
                let weights: Vec<f64> = letters.iter().map(|&p| f64::from(p)).collect();
                let mut rng = Rng::stream(seed, "readout-decision", u64::from(scene.scene_id));
                (0..samples)
                    .map(|_| {
                        let sampled = rng.weighted(&weights);
                        Decision { text: format!("Behavior: [{}]", letter(sampled)), letters: letters.clone(), sampled }
                    })
                    .collect()
            })
            .collect())
    }
}

/// A simforge model writing decisions: batched sampling until `Behavior: [`, then one forward
/// pass per decision for the letter distribution.
pub struct LocalTeacher {
    pub label: String,
    pub lm: LanguageModel,
    pub tokenizer: Tokenizer,
    /// Temperature, top-p and the longest rationale; `samples` and `seed` are set per call.
    pub sampling: SamplingOptions,
}

impl LocalTeacher {
    pub fn load(dir: &Path, sampling: SamplingOptions, device: &burn::tensor::Device) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let mut sampling = sampling;
        sampling.eos = tokenizer.turn_end_ids();
        Ok(Self { label: format!("local:{}", dir.display()), lm: LanguageModel::load(dir, device)?, tokenizer, sampling })
    }

    /// The chat prompt of a decision, through the assistant's empty think block.
    pub fn decision_prompt(scene: &DecisionScene) -> String {
        let messages =
            [Message { role: "system".into(), content: DECISION_SYSTEM_PROMPT.into() }, Message { role: "user".into(), content: scene.prompt.clone() }];
        answer_prompt(&messages)
    }

    /// Letter distributions after each `prompt ⊕ rationale` (the rationale ends in the cue).
    pub fn letter_distributions(&self, scenes: &[&DecisionScene], rationales: &[String]) -> Result<Vec<Vec<f32>>> {
        let prompts = scenes
            .iter()
            .zip(rationales)
            .map(|(s, r)| self.tokenizer.encode(&(Self::decision_prompt(s) + assistant_content(r))))
            .collect::<Result<Vec<_>>>()?;
        let choices: Vec<usize> = scenes.iter().map(|s| s.choices()).collect();
        option_distributions(&self.lm, &self.tokenizer, &prompts, &choices)
    }
}

/// Each prompt's (ending in `Behavior: [`) distribution over its first `choices` letters.
/// Scoring with the widest list's letters and renormalising each row over its own gives the
/// same numbers as scoring each prompt alone.
pub fn option_distributions(lm: &LanguageModel, tokenizer: &Tokenizer, prompts: &[Vec<u32>], choices: &[usize]) -> Result<Vec<Vec<f32>>> {
    let letters = tokenizer.option_letters(choices.iter().copied().max().unwrap_or(0))?;
    Ok(lm
        .option_probabilities(prompts, &letters)?
        .into_iter()
        .zip(choices)
        .map(|(p, &k)| {
            let total: f32 = p[..k].iter().sum();
            p[..k].iter().map(|x| x / total).collect()
        })
        .collect())
}

/// A generated continuation cut at the answer cue (appended when the model never wrote it),
/// without leading newlines: Qwen3's chat template drops them from an assistant turn, so this
/// is the text that SFT trains on and that a served model continues.
fn rationale(generated: &str) -> String {
    let generated = assistant_content(generated);
    match generated.find(ANSWER_CUE) {
        Some(at) => generated[..at + ANSWER_CUE.len()].to_owned(),
        None => {
            let text = without_turn_end(generated).trim_end();
            if text.is_empty() {
                ANSWER_CUE.to_owned()
            } else {
                format!("{text}\n{ANSWER_CUE}")
            }
        }
    }
}

impl Teacher for LocalTeacher {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn decide(&mut self, scenes: &[DecisionScene], samples: usize, seed: u64) -> Result<Vec<Vec<Decision>>> {
        let prompts = scenes.iter().map(|s| self.tokenizer.encode(&Self::decision_prompt(s))).collect::<Result<Vec<_>>>()?;
        let options = SamplingOptions { samples, seed, ..self.sampling.clone() };
        let tokenizer = &self.tokenizer;
        let stop = |tokens: &[u32]| tokenizer.decode(&tokens[tokens.len().saturating_sub(8)..]).is_ok_and(|t| t.ends_with(ANSWER_CUE));
        let generated = self.lm.generate(&prompts, &options, &stop);
        let mut rationales = Vec::with_capacity(scenes.len() * samples);
        let mut owners = Vec::with_capacity(scenes.len() * samples);
        for (scene, outputs) in scenes.iter().zip(&generated) {
            for tokens in outputs {
                rationales.push(rationale(&self.tokenizer.decode(tokens)?));
                owners.push(scene);
            }
        }
        let distributions = self.letter_distributions(&owners, &rationales)?;
        let mut rng = simforge_data::rng::Rng::stream(seed, "decision-letter", 0);
        let mut decisions: Vec<Vec<Decision>> = vec![Vec::with_capacity(samples); scenes.len()];
        for (i, (text, letters)) in rationales.into_iter().zip(distributions).enumerate() {
            let weights: Vec<f64> = letters.iter().map(|&p| f64::from(p)).collect();
            let sampled = rng.weighted(&weights);
            decisions[i / samples.max(1)].push(Decision { text: format!("{text}{}]", letter(sampled)), letters, sampled });
        }
        Ok(decisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rationales_end_at_the_answer_cue() {
        assert_eq!(rationale("Stimulus: x\nBehavior: [B]"), "Stimulus: x\nBehavior: [");
        assert_eq!(rationale("Stimulus: x<|im_end|>"), "Stimulus: x\nBehavior: [");
        assert_eq!(rationale("\n\nStimulus: x\nBehavior: [B]"), "Stimulus: x\nBehavior: [");
        assert_eq!(rationale(""), "Behavior: [");
    }
}
