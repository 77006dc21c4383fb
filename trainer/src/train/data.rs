//! Training examples from data-prep's Parquet: packed text chunks for DAPT, chat records with
//! assistant-only targets for SFT, chosen/rejected pairs for DPO; then length-bucketed, seeded
//! micro-batches.

use std::path::Path;

use simforge_data::parquet_io::Table;
use simforge_data::rng::Rng;
use simforge_data::scenes::letter;

use crate::error::{Result, TrainerError};
use crate::readout::{option_prompt, OptionPrompt};
use crate::tokenizer::{answer_prompt, chat_template, Message, Tokenizer};
use crate::train::config::{Objective, Readout, TrainConfig};

/// One training sequence; `targets[i]` says whether token `i` is predicted (from `i - 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub targets: Vec<bool>,
    /// DPO: this is the chosen response; the pair's other half.
    pub preference: Option<Box<Preference>>,
    /// Under the option readout: where each option is read (`ids` is the prompt) and what its
    /// scores are trained towards.
    pub options: Option<Box<OptionTargets>>,
}

/// A scene under the option readout.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionTargets {
    /// The position of each option line's last token.
    pub positions: Vec<usize>,
    pub label: OptionLabel,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OptionLabel {
    /// The target distribution over the options: one-hot on the real choice, or a teacher's
    /// choice distribution (distillation's soft targets).
    Choice(Vec<f32>),
    /// Per option: whether it holds a category the profile likes (the reading exercise).
    Liked(Vec<bool>),
}

/// The rejected response of a DPO pair and both responses' reference log-probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    pub rejected: Example,
    /// Summed log-probability of the chosen and the rejected response under the reference
    /// model (filled in once before training).
    pub reference: [f64; 2],
}

impl Example {
    pub fn new(ids: Vec<u32>, targets: Vec<bool>) -> Self {
        Self { ids, targets, preference: None, options: None }
    }

    fn of_options(prompt: OptionPrompt, label: OptionLabel) -> Self {
        let targets = vec![false; prompt.ids.len()];
        Self { ids: prompt.ids, targets, preference: None, options: Some(Box::new(OptionTargets { positions: prompt.positions, label })) }
    }

    /// Tokens of the longest sequence this example puts in a batch.
    pub fn longest(&self) -> usize {
        self.ids.len().max(self.preference.as_ref().map_or(0, |p| p.rejected.ids.len()))
    }

    pub fn target_count(&self) -> usize {
        self.targets.iter().skip(1).filter(|t| **t).count()
    }

    /// Tokens predicted from their predecessor that are not targets (the prompt).
    pub fn prompt_count(&self) -> usize {
        self.ids.len().saturating_sub(1) - self.target_count()
    }
}

#[derive(Debug, Default)]
pub struct Examples {
    pub train: Vec<Example>,
    pub eval: Vec<Example>,
    /// SFT records longer than `seq_len`, left out.
    pub too_long: usize,
}

/// Reads `path` for `objective`.
pub fn load(objective: Objective, path: &Path, tokenizer: &Tokenizer, config: &TrainConfig) -> Result<Examples> {
    let table = Table::read(path)?;
    let seed = config.seed.unwrap_or(0);
    let held_out = held_out_rows(&table, seed, config.eval_fraction)?;
    let mut examples = match objective {
        Objective::Dapt => dapt(&table, path, &held_out, tokenizer, config.seq_len),
        Objective::Sft if config.readout == Readout::Options => options(objective, &table, path, &held_out, tokenizer, config.seq_len),
        Objective::Reading => options(objective, &table, path, &held_out, tokenizer, config.seq_len),
        Objective::Sft => sft(&table, path, &held_out, tokenizer, config.seq_len),
        Objective::Dpo => dpo(&table, path, &held_out, tokenizer, config.seq_len),
    }?;
    examples.eval.truncate(config.max_eval_examples);
    Ok(examples)
}

/// Rows marked `split = "eval"` when the table has a split column, else a seeded fraction.
fn held_out_rows(table: &Table, seed: u64, fraction: f64) -> Result<Vec<bool>> {
    if let Ok(split) = table.strings("split") {
        return Ok(split.iter().map(|s| s == "eval").collect());
    }
    let mut rng = Rng::stream(seed, "held-out", 0);
    let rows = table.rows();
    let mut order: Vec<usize> = (0..rows).collect();
    rng.shuffle(&mut order);
    let count = if rows >= 2 { ((rows as f64 * fraction).round() as usize).clamp(usize::from(fraction > 0.0), rows - 1) } else { 0 };
    let mut held = vec![false; rows];
    for &r in &order[..count] {
        held[r] = true;
    }
    Ok(held)
}

/// Documents joined by `<|endoftext|>` and cut into `seq_len` chunks, every token a target.
fn dapt(table: &Table, path: &Path, held_out: &[bool], tokenizer: &Tokenizer, seq_len: usize) -> Result<Examples> {
    let texts = table.strings("text")?;
    let eos = tokenizer.token_id("<|endoftext|>").ok_or_else(|| TrainerError::settings("tokenizer", "it has no <|endoftext|> token"))?;
    let mut streams = [Vec::new(), Vec::new()];
    for (text, &held) in texts.iter().zip(held_out) {
        let stream = &mut streams[usize::from(held)];
        stream.extend(tokenizer.encode(text)?);
        stream.push(eos);
    }
    let chunks = |stream: &[u32]| -> Vec<Example> {
        let mut out: Vec<Example> = stream.chunks_exact(seq_len).map(|c| Example::new(c.to_vec(), vec![true; seq_len])).collect();
        let rest = &stream[stream.len() - stream.len() % seq_len..];
        if out.is_empty() && rest.len() >= 2 {
            out.push(Example::new(rest.to_vec(), vec![true; rest.len()]));
        }
        out
    };
    let examples = Examples { train: chunks(&streams[0]), eval: chunks(&streams[1]), too_long: 0 };
    if examples.train.is_empty() {
        return Err(TrainerError::Data(simforge_data::DataError::invalid(path, "no training text in column `text`")));
    }
    Ok(examples)
}

/// The messages of each row: `prompt` + `response` (+ optional `system`), or a scenes table
/// (`prompt` + `target_pos`), whose answer is `Behavior: [X]`.
pub fn chat_records(table: &Table, path: &Path) -> Result<Vec<Vec<Message>>> {
    let prompts = table.strings("prompt")?;
    let responses: Vec<String> = match table.strings("response") {
        Ok(r) => r,
        Err(_) => match table.u32s("target_pos") {
            Ok(pos) => {
                let choices = match table.u32s("choice_cnt") {
                    Err(simforge_data::DataError::MissingColumn { .. }) => vec![26; pos.len()],
                    other => other?,
                };
                if let Some(row) = pos.iter().zip(&choices).position(|(&p, &n)| p >= n.min(26)) {
                    return Err(TrainerError::record(path, row, format!("target_pos {} is not one of its {} lettered options", pos[row], choices[row])));
                }
                pos.iter().map(|&p| format!("Behavior: [{}]", letter(p as usize))).collect()
            }
            Err(_) => {
                return Err(TrainerError::Data(simforge_data::DataError::invalid(
                    path,
                    "expected chat records (columns `prompt` and `response`) or scenes (`prompt` and `target_pos`)",
                )))
            }
        },
    };
    let systems = table.opt_strings("system").ok();
    Ok(prompts
        .into_iter()
        .zip(responses)
        .enumerate()
        .map(|(i, (prompt, response))| {
            let mut messages = Vec::with_capacity(3);
            if let Some(system) = systems.as_ref().and_then(|s| s[i].clone()) {
                messages.push(Message { role: "system".into(), content: system });
            }
            messages.push(Message { role: "user".into(), content: prompt });
            messages.push(Message { role: "assistant".into(), content: response });
            messages
        })
        .collect())
}

/// Token ids of a conversation and, as targets, its final assistant turn's tokens (through
/// `<|im_end|>`).
pub fn chat_example(messages: &[Message], tokenizer: &Tokenizer) -> Result<Example> {
    if messages.last().is_none_or(|m| m.role != "assistant") {
        return Err(TrainerError::settings("chat record", "a training conversation must end with an assistant turn"));
    }
    let full = tokenizer.encode(&chat_template(messages, false))?;
    // The prefix is everything up to the assistant's content: the template with a generation
    // prompt, plus Qwen3's empty think block.
    let prefix_text = answer_prompt(&messages[..messages.len() - 1]);
    let prefix = tokenizer.encode(&prefix_text)?;
    if !full.starts_with(&prefix) {
        return Err(TrainerError::settings("chat record", "the chat prompt does not tokenize to a prefix of the conversation"));
    }
    // The trailing "\n" after <|im_end|> is not a target.
    let trailing = usize::from(full.last().is_some_and(|&t| Some(t) != tokenizer.token_id("<|im_end|>")));
    let targets = (0..full.len()).map(|i| i >= prefix.len() && i < full.len() - trailing).collect();
    Ok(Example::new(full, targets))
}

fn sft(table: &Table, path: &Path, held_out: &[bool], tokenizer: &Tokenizer, seq_len: usize) -> Result<Examples> {
    let mut examples = Examples::default();
    for (row, (messages, &held)) in chat_records(table, path)?.iter().zip(held_out).enumerate() {
        let example = chat_example(messages, tokenizer).map_err(|e| TrainerError::record(path, row, e.to_string()))?;
        if example.ids.len() > seq_len {
            examples.too_long += 1;
            continue;
        }
        if held { &mut examples.eval } else { &mut examples.train }.push(example);
    }
    if examples.train.is_empty() {
        return Err(nothing_to_train(path, held_out, examples.too_long, seq_len));
    }
    Ok(examples)
}

/// Scenes (`prompt`, `choice_cnt`, and for the choice `teacher_probs` where the table has them
/// (distillation's `choices.parquet`) else `target_pos`, or `liked_options` for the reading
/// exercise, + optional `system`) under the option readout.
fn options(objective: Objective, table: &Table, path: &Path, held_out: &[bool], tokenizer: &Tokenizer, seq_len: usize) -> Result<Examples> {
    let prompts = table.strings("prompt")?;
    let counts = table.u32s("choice_cnt")?;
    let labels: Vec<OptionLabel> = if objective == Objective::Reading {
        let liked = table.u32_lists("liked_options").map_err(|e| {
            TrainerError::Data(simforge_data::DataError::invalid(
                path,
                format!("the reading exercise needs scenes with `liked_options` (written by `simforge scenes`): {e}"),
            ))
        })?;
        liked.iter().zip(&counts).map(|(l, &k)| OptionLabel::Liked((0..k).map(|i| l.contains(&i)).collect())).collect()
    } else if let Ok(probs) = table.f32_lists("teacher_probs") {
        if let Some(row) = probs
            .iter()
            .zip(&counts)
            .position(|(p, &k)| p.len() != k as usize || p.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || p.iter().sum::<f32>() <= 0.0)
        {
            return Err(TrainerError::record(path, row, "teacher_probs must hold one non-negative probability per option, not all zero"));
        }
        probs
            .into_iter()
            .map(|p| {
                let total: f32 = p.iter().sum();
                OptionLabel::Choice(p.iter().map(|x| x / total).collect())
            })
            .collect()
    } else {
        let targets = table.u32s("target_pos")?;
        if let Some(row) = targets.iter().zip(&counts).position(|(&p, &k)| p >= k) {
            return Err(TrainerError::record(path, row, format!("target_pos {} is not one of its {} lettered options", targets[row], counts[row])));
        }
        targets.iter().zip(&counts).map(|(&p, &k)| OptionLabel::Choice((0..k).map(|i| f32::from(u8::from(i == p))).collect())).collect()
    };
    let systems = table.opt_strings("system").ok();
    let mut examples = Examples::default();
    for (row, label) in labels.into_iter().enumerate() {
        let count = counts[row] as usize;
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = systems.as_ref().and_then(|s| s[row].clone()) {
            messages.push(Message { role: "system".into(), content: system });
        }
        messages.push(Message { role: "user".into(), content: prompts[row].clone() });
        let prompt = option_prompt(tokenizer, &messages, count).map_err(|e| TrainerError::record(path, row, e.to_string()))?;
        if prompt.ids.len() > seq_len {
            examples.too_long += 1;
            continue;
        }
        if held_out[row] { &mut examples.eval } else { &mut examples.train }.push(Example::of_options(prompt, label));
    }
    if examples.train.is_empty() {
        return Err(nothing_to_train(path, held_out, examples.too_long, seq_len));
    }
    Ok(examples)
}

/// Records with `prompt`, `chosen`, `rejected` (+ optional `system`): each an example of the
/// chosen conversation carrying the rejected one.
fn dpo(table: &Table, path: &Path, held_out: &[bool], tokenizer: &Tokenizer, seq_len: usize) -> Result<Examples> {
    let prompts = table.strings("prompt")?;
    let chosen = table.strings("chosen")?;
    let rejected = table.strings("rejected")?;
    let systems = table.opt_strings("system").ok();
    let mut examples = Examples::default();
    for row in 0..table.rows() {
        let conversation = |response: &str| {
            let mut messages = Vec::with_capacity(3);
            if let Some(system) = systems.as_ref().and_then(|s| s[row].clone()) {
                messages.push(Message { role: "system".into(), content: system });
            }
            messages.push(Message { role: "user".into(), content: prompts[row].clone() });
            messages.push(Message { role: "assistant".into(), content: response.to_owned() });
            chat_example(&messages, tokenizer).map_err(|e| TrainerError::record(path, row, e.to_string()))
        };
        let mut example = conversation(&chosen[row])?;
        example.preference = Some(Box::new(Preference { rejected: conversation(&rejected[row])?, reference: [0.0; 2] }));
        if example.longest() > seq_len {
            examples.too_long += 1;
            continue;
        }
        if held_out[row] { &mut examples.eval } else { &mut examples.train }.push(example);
    }
    if examples.train.is_empty() {
        return Err(nothing_to_train(path, held_out, examples.too_long, seq_len));
    }
    Ok(examples)
}

/// Why a table left no training example, in the words a user can act on.
fn nothing_to_train(path: &Path, held_out: &[bool], too_long: usize, seq_len: usize) -> TrainerError {
    let message = if held_out.is_empty() {
        "the table has no records".to_string()
    } else if held_out.iter().all(|&h| h) {
        format!("all {} records are held out for evaluation (split = eval); training needs records with split = train", held_out.len())
    } else {
        format!("no training record fits seq_len {seq_len} ({too_long} records are longer); raise --seq-len")
    };
    TrainerError::Data(simforge_data::DataError::invalid(path, message))
}

/// Micro-batches of one epoch as example indices: shuffled with the epoch's seed, sorted by
/// length within windows of 64 batches so a batch pads little, then the batches shuffled.
pub fn epoch_batches(examples: &[Example], batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng::stream(seed, "epoch", epoch as u64);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    rng.shuffle(&mut order);
    for window in order.chunks_mut(batch_size * 64) {
        window.sort_by_key(|&i| examples[i].longest());
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_example_once_and_depend_on_the_seed() {
        let examples: Vec<Example> = (0..50).map(|n| Example::new(vec![1; n % 7 + 2], vec![true; n % 7 + 2])).collect();
        let a = epoch_batches(&examples, 4, 1, 0);
        let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_batches(&examples, 4, 1, 0));
        assert_ne!(a, epoch_batches(&examples, 4, 1, 1));
    }
}
