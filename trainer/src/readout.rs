//! The option readout: a scene's options scored at the ends of their own lines, one score each,
//! instead of by the answer letter after the prompt.
//!
//! The score of an option is the logit of one fixed token (`yes`) at the last token of the
//! option's line; a softmax over the options is the simulator's choice distribution. A tiny
//! model trained from scratch learns the choice this way where the letter readout leaves it at
//! chance (BENCHMARKS.md, "What makes a tiny model learn the choice"): each option is judged
//! where its text is, and a reading exercise on the same positions gives it a dense signal.
//! A model trained with it carries `option_readout.json`, which tells scoring to read it so.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use simforge_data::scenes::option_line_ends;

use crate::error::{Result, TrainerError};
use crate::inference::LanguageModel;
use crate::models::qwen3::{Batch, Qwen3ForCausalLM};
use crate::tokenizer::{answer_prompt, Message, Tokenizer};

pub const OPTION_READOUT_FILE: &str = "option_readout.json";

/// The token whose logit scores an option, as written beside a model trained to be read so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionReadout {
    /// The text whose first token is read.
    pub token: String,
    pub token_id: u32,
}

impl OptionReadout {
    /// The readout of a model with this tokenizer: the first token of `yes`.
    pub fn for_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        let token = "yes".to_owned();
        let token_id = *tokenizer.encode(&token)?.first().ok_or_else(|| TrainerError::settings("option readout", "`yes` encodes to no token"))?;
        Ok(Self { token, token_id })
    }

    /// The readout a model folder declares, if it was trained with one.
    pub fn of_model(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(OPTION_READOUT_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some(simforge_data::fsutil::read_json(&path)?))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        Ok(simforge_data::fsutil::write_json(&dir.join(OPTION_READOUT_FILE), self)?)
    }
}

/// A model trained under the option readout, loaded to answer by it.
pub struct ReadoutModel {
    pub label: String,
    pub lm: LanguageModel,
    pub tokenizer: Tokenizer,
    pub readout: OptionReadout,
}

impl ReadoutModel {
    /// The model in `dir`, if it declares an option readout.
    pub fn load(dir: &Path, device: &burn::tensor::Device) -> Result<Option<Self>> {
        let Some(readout) = OptionReadout::of_model(dir)? else { return Ok(None) };
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        Ok(Some(Self { label: format!("local:{}", dir.display()), lm: LanguageModel::load(dir, device)?, tokenizer, readout }))
    }

    /// The choice distribution of each scene (its user message and its number of options), the
    /// message alone in the conversation as in training.
    pub fn choice_distributions(&self, scenes: &[(&str, usize)]) -> Result<Vec<Vec<f32>>> {
        let prompts = scenes
            .iter()
            .map(|&(prompt, count)| option_prompt(&self.tokenizer, &[Message { role: "user".into(), content: prompt.to_owned() }], count))
            .collect::<Result<Vec<_>>>()?;
        self.lm.option_readout(&prompts, self.readout.token_id)
    }
}

/// A scene prompt ready for the option readout: its tokens, cut after the last option's line,
/// and the position of each option line's last token.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionPrompt {
    pub ids: Vec<u32>,
    pub positions: Vec<usize>,
}

/// The conversation `messages` (its last turn the scene's user message, whose final `count`
/// lines are the lettered options) as the model reads it for the option readout.
pub fn option_prompt(tokenizer: &Tokenizer, messages: &[Message], count: usize) -> Result<OptionPrompt> {
    let user = messages.last().map(|m| m.content.as_str()).unwrap_or_default();
    let ends = option_line_ends(user, count)
        .ok_or_else(|| TrainerError::settings("option readout", format!("the prompt does not end with {count} lettered option lines ([A] …, [B] …)")))?;
    let text = answer_prompt(messages);
    let start = text.rfind(&format!("{user}<|im_end|>")).ok_or_else(|| TrainerError::settings("option readout", "the chat template lost the prompt"))?;
    let (ids, starts) = tokenizer.encode_with_starts(&text)?;
    // The token that holds an option line's last byte: the last one starting before its end.
    let positions: Vec<usize> = ends.iter().map(|&end| starts.partition_point(|&s| s < start + end).saturating_sub(1)).collect();
    let keep = positions.last().map_or(0, |&p| p + 1);
    if positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(TrainerError::settings("option readout", "two option lines end in the same token"));
    }
    Ok(OptionPrompt { ids: ids[..keep].to_vec(), positions })
}

/// The readout score of every option of every row (its tokens and its options' positions), rows
/// right-padded into one batch: [options of all rows, in order].
pub fn option_scores(model: &Qwen3ForCausalLM, rows: &[(&[u32], &[usize])], token_id: u32, pad_id: u32, rope_theta: f64) -> Tensor<1> {
    let sequences: Vec<&[u32]> = rows.iter().map(|r| r.0).collect();
    let batch = Batch::right_padded(&sequences, pad_id);
    let len = batch.ids.first().map_or(0, Vec::len);
    let at: Vec<i64> = rows.iter().enumerate().flat_map(|(r, (_, positions))| positions.iter().map(move |&p| (r * len + p) as i64)).collect();
    let hidden = model.hidden(&batch, &batch.valid, rope_theta, None);
    let [b, t, d] = hidden.dims();
    let device = hidden.device();
    let n = at.len();
    let at: Tensor<1, Int> = Tensor::from_data(TensorData::new(at, [n]), &device);
    model.token_logit(hidden.reshape([b * t, d]).select(0, at), token_id)
}

/// Each row's options' scores as a softmax over its options; None for a row with a score that
/// is not finite (a diverged model), which has no distribution.
pub fn choice_distributions(scores: &[f32], counts: &[usize]) -> Vec<Option<Vec<f32>>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut at = 0;
    for &k in counts {
        let row = &scores[at..at + k];
        at += k;
        if row.iter().any(|s| !s.is_finite()) {
            out.push(None);
            continue;
        }
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|s| (s - top).exp()).collect();
        let total: f32 = e.iter().sum();
        out.push(Some(e.iter().map(|x| x / total).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_follow_their_counts() {
        let d = choice_distributions(&[0.0, 0.0, 1.0, 1.0, 1.0], &[2, 3]);
        assert_eq!(d[0], Some(vec![0.5, 0.5]));
        assert!(d[1].as_ref().is_some_and(|p| p.iter().all(|p| (p - 1.0 / 3.0).abs() < 1e-6)));
    }

    #[test]
    fn a_row_with_a_score_that_is_not_finite_has_no_distribution() {
        let d = choice_distributions(&[0.0, f32::NAN, 1.0, f32::INFINITY, 0.0, 2.0], &[2, 2, 2]);
        assert_eq!(d[0], None);
        assert_eq!(d[1], None);
        assert!(d[2].is_some());
    }
}
