//! Inference on the causal LM: option-letter scoring in one forward pass, log-probabilities
//! of given continuations, and batched generation with the KV cache (greedy, temperature,
//! top-p, seeded, several samples per prompt, stop conditions).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use simforge_data::rng::Rng;

use crate::models::qwen3::{Batch, KvCache, Qwen3Config, Qwen3ForCausalLM};
use crate::readout::{choice_distributions, option_scores, OptionPrompt};

/// A loaded model with what inference needs beside it.
pub struct LanguageModel {
    pub model: Qwen3ForCausalLM,
    pub config: Qwen3Config,
    /// Token used to pad batches (never attended to).
    pub pad_id: u32,
}

fn host_rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, width] = t.dims();
    let values: Vec<f32> = t.into_data().try_to_vec().unwrap_or_default();
    values.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

/// The next-token log-probabilities `row` renormalised over `letters` (a letter outside the
/// distribution's reach floored at 1e-10); None when one of them is not finite.
fn letter_distribution(row: &[f32], letters: &[u32]) -> Option<Vec<f32>> {
    let logp: Vec<f64> = letters.iter().map(|&l| f64::from(row[l as usize])).collect();
    if logp.iter().any(|x| x.is_nan() || *x == f64::INFINITY) {
        return None;
    }
    let p: Vec<f64> = logp.iter().map(|x| x.exp().max(1e-10)).collect();
    let total: f64 = p.iter().sum();
    Some(p.iter().map(|x| (x / total) as f32).collect())
}

fn non_finite_scores(prompt: usize) -> crate::TrainerError {
    crate::TrainerError::Diverged {
        message: format!(
            "the model's scores for prompt {prompt} (0-based) are not finite: its weights or activations overflow, so it has no answer distribution"
        ),
    }
}

/// The vocabulary logits of the last position of left-padded hidden states [batch, seq,
/// hidden]: [batch, vocab].
fn last_position_logits(model: &Qwen3ForCausalLM, hidden: Tensor<3>) -> Tensor<2> {
    let [b, t, d] = hidden.dims();
    model.logits(hidden.slice([0..b, t - 1..t, 0..d]).reshape([b, d]))
}

impl LanguageModel {
    /// Loads a checkpoint folder; padding uses the config's `pad_token_id` (else 0).
    pub fn load(dir: &std::path::Path, device: &burn::tensor::Device) -> crate::Result<Self> {
        let (config, model) = crate::checkpoint::load_qwen3(dir, device)?;
        let pad_id = config.extra.get("pad_token_id").and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
        Ok(Self { model, config, pad_id })
    }

    /// Logits at the last position of each sequence: [batch, vocab]. Only that position is
    /// projected onto the vocabulary.
    pub fn last_logits(&self, sequences: &[Vec<u32>]) -> Tensor<2> {
        let batch = Batch::left_padded(sequences, self.pad_id);
        last_position_logits(&self.model, self.model.hidden(&batch, &batch.valid, self.config.rope_theta, None))
    }

    /// For prompts ending in `Behavior: [`, the probability of each option letter as the next
    /// token, renormalised over the letters: one forward pass per few prompts of similar length.
    /// A prompt whose letters' log-probabilities are not finite (a diverged model) is an error
    /// naming it, never a distribution.
    pub fn option_probabilities(&self, prompts: &[Vec<u32>], letters: &[u32]) -> crate::Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); prompts.len()];
        for group in length_groups(prompts, Vec::len, FORWARD_ROWS) {
            let rows: Vec<Vec<u32>> = group.iter().map(|&i| prompts[i].clone()).collect();
            for (&i, row) in group.iter().zip(host_rows(log_softmax(self.last_logits(&rows), 1))) {
                out[i] = letter_distribution(&row, letters).ok_or_else(|| non_finite_scores(i))?;
            }
        }
        Ok(out)
    }

    /// Under the option readout (the logit of `token_id` at each option line's end): each
    /// prompt's choice distribution, a softmax over its options' scores.
    pub fn option_readout(&self, prompts: &[OptionPrompt], token_id: u32) -> crate::Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); prompts.len()];
        // One vocabulary row is projected, so more rows fit a forward pass than for letters.
        for group in length_groups(prompts, |p| p.ids.len(), 4 * FORWARD_ROWS) {
            let rows: Vec<(&[u32], &[usize])> = group.iter().map(|&i| (prompts[i].ids.as_slice(), prompts[i].positions.as_slice())).collect();
            let scores = crate::tensors::host(option_scores(&self.model, &rows, token_id, self.pad_id, self.config.rope_theta));
            let counts: Vec<usize> = group.iter().map(|&i| prompts[i].positions.len()).collect();
            for (&i, p) in group.iter().zip(choice_distributions(&scores, &counts)) {
                out[i] = p.ok_or_else(|| non_finite_scores(i))?;
            }
        }
        Ok(out)
    }

    /// Total log-probability of each continuation given its prompt, batched.
    pub fn continuation_logprobs(&self, pairs: &[(Vec<u32>, Vec<u32>)]) -> Vec<f64> {
        let sequences: Vec<Vec<u32>> = pairs.iter().map(|(p, c)| p.iter().chain(c).copied().collect()).collect();
        let batch = Batch::left_padded(&sequences, self.pad_id);
        let hidden = self.model.hidden(&batch, &batch.valid, self.config.rope_theta, None);
        let [b, t, d] = hidden.dims();
        // Continuation tokens sit at the last positions and each is predicted one earlier, so
        // only the `longest` positions before the last are projected onto the vocabulary.
        let longest = pairs.iter().map(|(_, c)| c.len()).max().unwrap_or(0).min(t - 1);
        let targets: Vec<i64> = batch.ids.iter().flat_map(|row| row[t - longest..].iter().map(|&i| i64::from(i))).collect();
        let device = hidden.device();
        let targets: Tensor<3, Int> = Tensor::from_data(TensorData::new(targets, [b, longest, 1]), &device);
        let logits = self.model.logits(hidden.slice([0..b, t - 1 - longest..t - 1, 0..d]));
        let picked = log_softmax(logits, 2).gather(2, targets).reshape([b, longest]);
        host_rows(picked).iter().zip(pairs).map(|(row, (_, continuation))| row[longest - continuation.len()..].iter().map(|&x| f64::from(x)).sum()).collect()
    }

    /// For each token of `continuation` after `prompt`: its log-probability and the `top`
    /// likeliest tokens at its position (one forward pass).
    pub fn token_logprobs(&self, prompt: &[u32], continuation: &[u32], top: usize) -> Vec<(f32, Vec<(u32, f32)>)> {
        if continuation.is_empty() {
            return Vec::new();
        }
        let sequence: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
        let batch = Batch::left_padded(&[sequence], self.pad_id);
        let hidden = self.model.hidden(&batch, &batch.valid, self.config.rope_theta, None);
        let [_, t, d] = hidden.dims();
        let n = continuation.len();
        let rows = host_rows(log_softmax(self.model.logits(hidden.slice([0..1, t - 1 - n..t - 1, 0..d]).reshape([n, d])), 1));
        let descending = |row: &[f32], a: u32, b: u32| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b));
        rows.iter()
            .zip(continuation)
            .map(|(row, &token)| {
                let mut order: Vec<u32> = (0..row.len() as u32).collect();
                let top = top.min(order.len());
                if top > 0 {
                    order.select_nth_unstable_by(top - 1, |&a, &b| descending(row, a, b));
                }
                order.truncate(top);
                order.sort_by(|&a, &b| descending(row, a, b));
                (row[token as usize], order.into_iter().map(|i| (i, row[i as usize])).collect())
            })
            .collect()
    }

    /// Continuations of every prompt, `samples` each, generated in batches of a few rows; a
    /// prompt is read once and its cache shared by its samples. Each row draws from its own
    /// seeded stream, so the batching does not change what is drawn.
    pub fn generate(&self, prompts: &[Vec<u32>], options: &SamplingOptions, stop: &dyn Fn(&[u32]) -> bool) -> Vec<Vec<Vec<u32>>> {
        self.generate_watched(prompts, options, &|_, tokens| stop(tokens))
    }

    /// As [`Self::generate`], with `watch(row, tokens)` called after each token that is not an
    /// end of sequence (row = prompt × samples + sample): it sees every row grow, which
    /// streaming needs, and ends the row by returning true.
    pub fn generate_watched(&self, prompts: &[Vec<u32>], options: &SamplingOptions, watch: &dyn Fn(usize, &[u32]) -> bool) -> Vec<Vec<Vec<u32>>> {
        let samples = options.samples.max(1);
        let mut out = vec![Vec::new(); prompts.len()];
        for group in length_groups(prompts, Vec::len, (GENERATE_ROWS / samples).max(1)) {
            let unique: Vec<Vec<u32>> = group.iter().map(|&p| prompts[p].clone()).collect();
            let generated = self.generate_group(&group, &unique, options, watch);
            for (&p, continuations) in group.iter().zip(generated.chunks(samples)) {
                out[p] = continuations.to_vec();
            }
        }
        out
    }

    /// One batch: `prompts` (at indices `ids` of the caller's list) read together, then
    /// `samples` rows of each decoded together.
    fn generate_group(&self, ids: &[usize], prompts: &[Vec<u32>], options: &SamplingOptions, watch: &dyn Fn(usize, &[u32]) -> bool) -> Vec<Vec<u32>> {
        let samples = options.samples.max(1);
        let prefill = Batch::left_padded(prompts, self.pad_id);
        let mut cache = KvCache::new(self.config.num_hidden_layers);
        let hidden = self.model.hidden(&prefill, &prefill.valid, self.config.rope_theta, Some(&mut cache));
        let first = host_rows(last_position_logits(&self.model, hidden));
        let expand: Vec<usize> = (0..prompts.len()).flat_map(|p| std::iter::repeat_n(p, samples)).collect();
        let mut cache = cache.select_rows(&expand);
        let mut key_valid: Vec<Vec<bool>> = expand.iter().map(|&p| prefill.valid[p].clone()).collect();
        let mut last: Vec<Vec<f32>> = expand.iter().map(|&p| first[p].clone()).collect();
        let mut rngs: Vec<Rng> = ids.iter().flat_map(|&p| (0..samples).map(move |s| Rng::stream(options.seed, "sample", (p * samples + s) as u64))).collect();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); expand.len()];
        let mut done = vec![false; expand.len()];
        for step in 0..options.max_new_tokens {
            let mut next = Vec::with_capacity(expand.len());
            for (i, row) in last.iter().enumerate() {
                if done[i] {
                    next.push(None);
                    continue;
                }
                let token = options.pick(row, &mut rngs[i]);
                out[i].push(token);
                done[i] = options.eos.contains(&token) || watch(ids[i / samples] * samples + i % samples, &out[i]);
                next.push(Some(token));
            }
            if done.iter().all(|d| *d) || step + 1 == options.max_new_tokens {
                break;
            }
            for (row, token) in key_valid.iter_mut().zip(&next) {
                row.push(token.is_some());
            }
            let batch = Batch { ids: next.iter().map(|t| vec![t.unwrap_or(self.pad_id)]).collect(), valid: next.iter().map(|t| vec![t.is_some()]).collect() };
            last = host_rows(last_position_logits(&self.model, self.model.hidden(&batch, &key_valid, self.config.rope_theta, Some(&mut cache))));
        }
        out
    }
}

/// Rows per forward-only pass and per generation batch. Attention scores grow with rows ×
/// length²; on CPU a few rows at a time run faster than one large padded batch (measured:
/// 96 scenes scored in 5.4 s at 2 rows, 9.6 s at 48).
const FORWARD_ROWS: usize = 4;
const GENERATE_ROWS: usize = 16;

/// Indices of `items` in groups of at most `size`, similar lengths (`len`) together.
fn length_groups<T>(items: &[T], len: impl Fn(&T) -> usize, size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| len(&items[i]));
    order.chunks(size.max(1)).map(<[usize]>::to_vec).collect()
}

/// How to pick each next token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingOptions {
    pub max_new_tokens: usize,
    /// 0 is greedy; otherwise logits are divided by it before the softmax.
    pub temperature: f64,
    /// Nucleus sampling: the smallest set of tokens whose probability reaches top_p.
    pub top_p: f64,
    pub samples: usize,
    pub seed: u64,
    /// Tokens that end a continuation (kept in the output).
    pub eos: Vec<u32>,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_p: 1.0, samples: 1, seed: 0, eos: Vec::new() }
    }
}

impl SamplingOptions {
    fn pick(&self, logits: &[f32], rng: &mut Rng) -> u32 {
        if self.temperature <= 0.0 {
            return simforge_data::rng::argmax(logits) as u32;
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f64)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, ((f64::from(l) - f64::from(max)) / self.temperature).exp())).collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0;
        let mut mass = 0.0;
        for p in &probs {
            kept += 1;
            mass += p.1 / total;
            if mass >= self.top_p {
                break;
            }
        }
        let weights: Vec<f64> = probs[..kept].iter().map(|p| p.1).collect();
        probs[rng.weighted(&weights)].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_renormalise_and_a_non_finite_one_is_refused() {
        let row = [0.5f32.ln(), 0.25f32.ln(), f32::NEG_INFINITY, f32::NAN];
        let p = letter_distribution(&row, &[0, 1, 2]).expect("finite");
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-6 && (p[1] - 1.0 / 3.0).abs() < 1e-6 && p[2] < 1e-9);
        assert_eq!(letter_distribution(&row, &[0, 3]), None);
        assert_eq!(letter_distribution(&[f32::INFINITY, 0.0], &[0, 1]), None);
    }
}
