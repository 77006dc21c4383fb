//! One training loop for causal-LM objectives (DAPT on text, SFT on chat records, DPO on
//! preference pairs), full or LoRA, with AdamW, warm-up + cosine, global-norm clipping,
//! gradient accumulation, periodic evaluation, `metrics.jsonl`, atomic Hugging Face checkpoints and exact resumption.
//!
//! Output folder: `checkpoint-<step>/` (resumable: model or adapter + `trainer_state/`),
//! `model/` (the final model), `metrics.jsonl`.

pub mod config;
pub mod data;
pub mod diagnostic;
pub mod optim;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use simforge_data::rng::Rng;

use crate::checkpoint::{
    adapter_tensors, attach_lora, load_adapter_values, load_qwen3, model_tensors, write_dir_atomically, write_model_files, AdapterConfig, ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
};
use crate::error::{Result, TrainerError};
use crate::models::qwen3::{Batch, Qwen3Config, Qwen3ForCausalLM};
use crate::readout::{option_scores, OptionReadout};
use crate::tensors::{host, read_safetensors, write_safetensors};
use crate::tokenizer::Tokenizer;
use config::{Objective, Readout, TrainConfig};
use data::{epoch_batches, Example, OptionLabel};
use optim::{learning_rate, AdamW, GradientSum};

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const FINAL_MODEL: &str = "model";
/// SASRec's best validated epoch, beside the final model.
pub const BEST_MODEL: &str = "best";
const STATE_DIR: &str = "trainer_state";

/// What to train, on what, into where.
pub struct TrainJob<'a> {
    pub objective: Objective,
    /// Parquet written by data-prep: a corpus (`text`) for DAPT, chat records or scenes for SFT.
    pub data: &'a Path,
    /// The model to start from (Hugging Face folder with `tokenizer.json`).
    pub init: &'a Path,
    pub out: &'a Path,
    pub config: &'a TrainConfig,
    pub device: Device,
    /// Continue from the newest `checkpoint-<step>/` in `out` if there is one.
    pub resume: bool,
}

/// One optimizer step's numbers, as written to `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub tokens_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_loss: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub resumed_from: Option<usize>,
    pub train_examples: usize,
    pub eval_examples: usize,
    pub too_long: usize,
    pub final_loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub model: PathBuf,
    pub trainable_parameters: usize,
}

/// What a checkpoint needs besides weights to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    total_steps: usize,
    adam_step: u64,
    objective: Objective,
    config: TrainConfig,
}

/// Runs `job`, calling `progress` after every optimizer step.
pub fn train(job: &TrainJob, progress: &mut dyn FnMut(&StepMetrics, usize)) -> Result<TrainSummary> {
    // 1. Settings, tokenizer, examples.
    let c = job.config;
    if let Some(problem) = c.problem() {
        return Err(TrainerError::settings("training settings", problem));
    }
    let seed = c.seed.unwrap_or(0);
    let tokenizer = Tokenizer::from_file(&job.init.join("tokenizer.json"))?;
    let mut examples = data::load(job.objective, job.data, &tokenizer, c)?;
    // A model trained under the option readout keeps the token its starting model was read by.
    let readout = match (job.objective, c.readout) {
        (Objective::Reading, _) | (Objective::Sft, Readout::Options) => Some(match OptionReadout::of_model(job.init)? {
            Some(r) => r,
            None => OptionReadout::for_tokenizer(&tokenizer)?,
        }),
        _ => None,
    };
    let loss_kind = match (job.objective, &readout) {
        (Objective::Dpo, _) => Loss::Dpo { beta: c.dpo_beta },
        (Objective::Dapt, _) => Loss::Nll { prompt_weight: 0.0 },
        (Objective::Reading, Some(r)) => Loss::Reading { token_id: r.token_id },
        (Objective::Sft, Some(r)) => Loss::Choice { token_id: r.token_id },
        (Objective::Sft | Objective::Reading, _) => Loss::Nll { prompt_weight: c.prompt_loss_weight },
    };
    let batches_per_epoch = examples.train.len().div_ceil(c.batch_size);
    let total_steps = (c.epochs * batches_per_epoch / c.grad_accum).max(1).min(c.max_steps.unwrap_or(usize::MAX));
    let warmup = (c.warmup_ratio * total_steps as f64).round() as usize;

    // 2. The model and optimizer: fresh from `init`, or from the newest checkpoint.
    let resume_from = prepare_output(job.out, job.resume, &[job.init, job.data])?;
    let (config, mut model) = load_qwen3(job.init, &job.device)?;
    let pad_id = config.extra.get("pad_token_id").and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
    if job.objective == Objective::Dpo {
        // The starting model is DPO's reference; its log-probabilities are computed once.
        set_reference_logprobs(&model, &mut examples.train, c.batch_size, pad_id, config.rope_theta);
        set_reference_logprobs(&model, &mut examples.eval, c.batch_size, pad_id, config.rope_theta);
    }
    if let Some(lora) = &c.lora {
        model = attach_lora(model, &config, lora, seed)?;
    }
    let mut optimizer = AdamW::new(c);
    let mut start = 0;
    if let Some((step, dir)) = &resume_from {
        let state: TrainerState = read_state(dir)?;
        if state.config != *c || state.objective != job.objective {
            return Err(TrainerError::checkpoint(dir, "was written with different training settings; resume with the same ones or start a new output folder"));
        }
        model = if c.lora.is_some() {
            load_adapter_values(model, read_safetensors(&dir.join(ADAPTER_WEIGHTS))?, dir)?
        } else {
            crate::checkpoint::load_full_weights(dir, &job.device)?.1
        };
        optimizer.step = state.adam_step;
        optimizer.read_moments(&dir.join(STATE_DIR).join("optimizer.safetensors"), &job.device)?;
        start = *step;
    }
    let mut model = model.train();
    let trainable_parameters = crate::tensors::named_parameters(&model).iter().filter(|p| p.3).map(|p| p.2.iter().product::<usize>()).sum();
    let metrics_path = job.out.join(METRICS_FILE);
    keep_metrics_where(&metrics_path, |m: &StepMetrics| m.step <= start)?;

    // 3. The steps.
    let mut last_loss = None;
    let mut last_eval = None;
    let mut epoch_cache: Option<(usize, Vec<Vec<usize>>)> = None;
    let clock = Instant::now();
    let mut tokens_seen = 0usize;
    for step in start..total_steps {
        let micro: Vec<Vec<usize>> = (step * c.grad_accum..(step + 1) * c.grad_accum)
            .map(|g| {
                let epoch = g / batches_per_epoch;
                if epoch_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    epoch_cache = Some((epoch, epoch_batches(&examples.train, c.batch_size, seed, epoch)));
                }
                epoch_cache.as_ref().map(|(_, b)| b[g % batches_per_epoch].clone()).unwrap_or_default()
            })
            .collect();
        let micro: Vec<Vec<&Example>> = micro.iter().map(|b| b.iter().map(|&i| &examples.train[i]).collect()).collect();
        tokens_seen += micro.iter().flatten().map(|e| e.ids.len() + e.preference.as_ref().map_or(0, |p| p.rejected.ids.len())).sum::<usize>();
        let (grads, loss) = step_gradients(&mut model, &micro, loss_kind, Rng::stream(seed, "dropout", step as u64).next_u64(), pad_id, config.rope_theta);
        let grad_norm = grads.global_norm();
        if !loss.is_finite() || !grad_norm.is_finite() {
            let kept = latest_checkpoint(job.out)?.map_or("none was written yet".to_string(), |(_, d)| d.display().to_string());
            return Err(TrainerError::Diverged {
                message: format!(
                    "step {}: the loss is {loss} and the gradient norm {grad_norm}; training stopped. The last good checkpoint: {kept}. Lower the learning rate or check the data.",
                    step + 1
                ),
            });
        }
        let grads = clip_global_norm(grads, grad_norm, c.max_grad_norm);
        let lr = learning_rate(c.lr, step, warmup, total_steps);
        model = optimizer.apply(model, grads, lr);
        let done = step + 1;
        let eval_loss = if !examples.eval.is_empty() && (done == total_steps || (c.eval_every > 0 && done % c.eval_every == 0)) {
            Some(evaluate(&model, &examples.eval, loss_kind, c.batch_size, pad_id, config.rope_theta))
        } else {
            None
        };
        let metrics = StepMetrics {
            step: done,
            epoch: (done * c.grad_accum) as f64 / batches_per_epoch as f64,
            loss,
            lr,
            grad_norm,
            tokens: tokens_seen,
            tokens_per_s: tokens_seen as f64 / clock.elapsed().as_secs_f64().max(1e-9),
            eval_loss,
        };
        append_metrics(&metrics_path, &metrics)?;
        progress(&metrics, total_steps);
        last_loss = Some(loss);
        last_eval = eval_loss.or(last_eval);
        if done < total_steps && c.save_every > 0 && done % c.save_every == 0 {
            let state = TrainerState { step: done, total_steps, adam_step: optimizer.step, objective: job.objective, config: c.clone() };
            save_checkpoint(job, &config, &model, readout.as_ref(), &optimizer, &state)?;
        }
    }

    // 4. The final model.
    let final_dir = job.out.join(FINAL_MODEL);
    write_dir_atomically(&final_dir, |tmp| write_model_into(tmp, job, &config, &model, readout.as_ref()))?;
    Ok(TrainSummary {
        steps: total_steps,
        resumed_from: resume_from.map(|(s, _)| s),
        train_examples: examples.train.len(),
        eval_examples: examples.eval.len(),
        too_long: examples.too_long,
        final_loss: last_loss,
        eval_loss: last_eval,
        model: final_dir,
        trainable_parameters,
    })
}

/// What a step minimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Mean negative log-likelihood per target token, plus `prompt_weight` times the mean over
    /// the other (prompt) tokens: reading the prompt as text teaches what a user repeats.
    Nll { prompt_weight: f64 },
    /// Mean −log σ(β·(policy − reference log-ratio of chosen over rejected)) per pair.
    Dpo { beta: f64 },
    /// Under the option readout (scores: the logit of `token_id` at each option line's end):
    /// mean listwise cross-entropy of a scene's options against its target distribution (the
    /// real choice, or a teacher's distribution).
    Choice { token_id: u32 },
    /// Under the option readout: mean binary cross-entropy per option against whether it holds
    /// a category the profile likes (the reading exercise).
    Reading { token_id: u32 },
}

impl Loss {
    /// What the loss of `rows` is a mean over: [target tokens (DPO: pairs; the choice: scenes;
    /// the reading exercise: options), prompt tokens].
    fn units<'a>(self, rows: impl Iterator<Item = &'a Example> + Clone) -> [usize; 2] {
        match self {
            Loss::Nll { .. } => [rows.clone().map(Example::target_count).sum(), rows.map(Example::prompt_count).sum()],
            Loss::Dpo { .. } | Loss::Choice { .. } => [rows.count(), 0],
            Loss::Reading { .. } => [rows.filter_map(|e| e.options.as_ref()).map(|o| o.positions.len()).sum(), 0],
        }
    }
}

/// Gradients of one optimizer step summed over its micro-batches, with the loss as the mean
/// over all of the step's target tokens (DPO: pairs), so accumulation equals one large batch.
/// Each micro-batch draws its LoRA dropout masks from its own seed, derived from `dropout_seed`.
pub fn step_gradients(
    model: &mut Qwen3ForCausalLM,
    micro: &[Vec<&Example>],
    loss: Loss,
    dropout_seed: u64,
    pad_id: u32,
    rope_theta: f64,
) -> (GradientSum, f64) {
    let units = loss.units(micro.iter().flatten().copied());
    let mut grads = GradientSum::default();
    let mut total = 0.0;
    for (i, rows) in micro.iter().enumerate() {
        model.reseed_lora_dropout(Rng::stream(dropout_seed, "micro-batch", i as u64).next_u64());
        let part = step_loss(model, rows, loss, units, pad_id, rope_theta);
        total += f64::from(scalar(part.clone()));
        grads.add(model, part.backward());
    }
    (grads, total)
}

/// `rows`' share of a step's loss, whose target tokens (DPO: pairs) and prompt tokens number
/// `units` over the whole step.
fn step_loss(model: &Qwen3ForCausalLM, rows: &[&Example], loss: Loss, units: [usize; 2], pad_id: u32, rope_theta: f64) -> Tensor<1> {
    match loss {
        Loss::Nll { prompt_weight } if prompt_weight > 0.0 => {
            let (answers, prompts) = scored_logprobs(model, rows, pad_id, rope_theta, true);
            let prompts = prompts.unwrap_or_else(|| Tensor::zeros([1], &answers.device()));
            let answers = answers.sum().div_scalar(units[0].max(1) as f64);
            (answers + prompts.div_scalar(units[1].max(1) as f64).mul_scalar(prompt_weight)).neg()
        }
        _ => summed_loss(model, rows, loss, pad_id, rope_theta).div_scalar(units[0].max(1) as f64),
    }
}

/// The loss of `rows` summed over target tokens (DPO: over pairs).
fn summed_loss(model: &Qwen3ForCausalLM, rows: &[&Example], loss: Loss, pad_id: u32, rope_theta: f64) -> Tensor<1> {
    match loss {
        Loss::Nll { .. } => sequence_logprobs(model, rows, pad_id, rope_theta).sum().neg(),
        Loss::Dpo { beta } => {
            let pairs: Vec<(&Example, &data::Preference)> = rows.iter().filter_map(|e| e.preference.as_deref().map(|p| (*e, p))).collect();
            let n = pairs.len();
            let sequences: Vec<&Example> = pairs.iter().map(|p| p.0).chain(pairs.iter().map(|p| &p.1.rejected)).collect();
            let logprobs = sequence_logprobs(model, &sequences, pad_id, rope_theta);
            let device = logprobs.device();
            let reference: Vec<f32> = pairs.iter().map(|p| (p.1.reference[0] - p.1.reference[1]) as f32).collect();
            let reference: Tensor<1> = Tensor::from_data(TensorData::new(reference, [n]), &device);
            let margin = (logprobs.clone().slice([0..n]) - logprobs.slice([n..2 * n]) - reference).mul_scalar(beta);
            // −log σ(x) = softplus(−x).
            crate::models::softplus(margin.neg()).sum()
        }
        Loss::Choice { token_id } | Loss::Reading { token_id } => {
            let scored: Vec<(&Example, &data::OptionTargets)> = rows.iter().filter_map(|e| e.options.as_deref().map(|o| (*e, o))).collect();
            let inputs: Vec<(&[u32], &[usize])> = scored.iter().map(|(e, o)| (e.ids.as_slice(), o.positions.as_slice())).collect();
            let scores = option_scores(model, &inputs, token_id, pad_id, rope_theta);
            let targets: Vec<&data::OptionTargets> = scored.iter().map(|(_, o)| *o).collect();
            option_loss(scores, &targets)
        }
    }
}

/// The summed option-readout loss of `scenes`, whose options' scores lie flat in `scores`, in
/// order: cross-entropy of the softmax over a scene's options against its target distribution,
/// binary cross-entropy for per-option labels.
fn option_loss(scores: Tensor<1>, scenes: &[&data::OptionTargets]) -> Tensor<1> {
    let device = scores.device();
    let [n] = scores.dims();
    let (mut signs, mut targets) = (Vec::with_capacity(n), Vec::with_capacity(scenes.len()));
    for scene in scenes {
        match &scene.label {
            // −log σ(s) for a liked option, −log σ(−s) for the others: softplus(∓s).
            OptionLabel::Liked(liked) => signs.extend(liked.iter().map(|&y| if y { -1.0f32 } else { 1.0 })),
            OptionLabel::Choice(target) => targets.push(target),
        }
    }
    if targets.is_empty() {
        return crate::models::softplus(scores * Tensor::<1>::from_data(TensorData::new(signs, [n]), &device)).sum();
    }
    // Scores padded into [scenes, widest], padding at −10⁹ so it takes no probability.
    let rows = targets.len();
    let widest = targets.iter().map(|t| t.len()).max().unwrap_or(1);
    let (mut index, mut padding, mut weights) = (vec![0i64; rows * widest], vec![-1e9f32; rows * widest], vec![0.0f32; rows * widest]);
    let mut at = 0;
    for (r, target) in targets.iter().enumerate() {
        for (j, &w) in target.iter().enumerate() {
            index[r * widest + j] = (at + j) as i64;
            padding[r * widest + j] = 0.0;
            weights[r * widest + j] = w;
        }
        at += target.len();
    }
    let index: Tensor<1, Int> = Tensor::from_data(TensorData::new(index, [rows * widest]), &device);
    let padding: Tensor<2> = Tensor::from_data(TensorData::new(padding, [rows, widest]), &device);
    let weights: Tensor<2> = Tensor::from_data(TensorData::new(weights, [rows, widest]), &device);
    let grid = scores.select(0, index).reshape([rows, widest]) + padding;
    (log_softmax(grid, 1) * weights).sum().neg()
}

/// Fills each DPO example's reference log-probabilities from `model` (no gradients).
fn set_reference_logprobs(model: &Qwen3ForCausalLM, examples: &mut [Example], batch_size: usize, pad_id: u32, rope_theta: f64) {
    let model = model.valid();
    for chunk in examples.chunks_mut(batch_size.max(1)) {
        let sequences: Vec<&Example> = chunk.iter().flat_map(|e| std::iter::once(e).chain(e.preference.as_ref().map(|p| &p.rejected))).collect();
        let logprobs = host(sequence_logprobs(&model, &sequences, pad_id, rope_theta));
        let mut values = logprobs.into_iter().map(f64::from);
        for e in chunk.iter_mut() {
            let chosen = values.next().unwrap_or_default();
            if let Some(p) = e.preference.as_mut() {
                p.reference = [chosen, values.next().unwrap_or_default()];
            }
        }
    }
}

/// Scales all gradients together so their global L2 norm is at most `max_norm` (0: no clipping).
pub fn clip_global_norm(mut grads: GradientSum, norm: f64, max_norm: f64) -> GradientSum {
    if max_norm > 0.0 && norm > max_norm {
        grads.scale(max_norm / (norm + 1e-6));
    }
    grads
}

fn scalar(t: Tensor<1>) -> f32 {
    host(t).first().copied().unwrap_or(f32::NAN)
}

/// Summed log-probability of each row's target tokens, the rows right-padded into one batch: [rows].
/// Only the positions that predict a target are projected onto the vocabulary: with the loss on
/// a short answer after a long prompt, that is a small share of the sequence.
pub fn sequence_logprobs(model: &Qwen3ForCausalLM, rows: &[&Example], pad_id: u32, rope_theta: f64) -> Tensor<1> {
    scored_logprobs(model, rows, pad_id, rope_theta, false).0
}

/// [`sequence_logprobs`], and with `prompt` also the log-probability of every other token
/// (each from its predecessor), summed over all rows: [1].
fn scored_logprobs(model: &Qwen3ForCausalLM, rows: &[&Example], pad_id: u32, rope_theta: f64, prompt: bool) -> (Tensor<1>, Option<Tensor<1>>) {
    let sequences: Vec<&[u32]> = rows.iter().map(|e| e.ids.as_slice()).collect();
    let batch = Batch::right_padded(&sequences, pad_id);
    let len = batch.ids.first().map_or(0, Vec::len);
    // Flat position (row * len + i - 1) that predicts token i, the token, and its row (none for
    // a prompt token: those are summed over the batch).
    let (mut at, mut next, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    for (r, e) in rows.iter().enumerate() {
        for i in 1..e.ids.len() {
            let target = e.targets.get(i).copied().unwrap_or(false);
            if target || prompt {
                at.push((r * len + i - 1) as i64);
                next.push(i64::from(e.ids[i]));
                owner.push(target.then_some(r));
            }
        }
    }
    let hidden = model.hidden(&batch, &batch.valid, rope_theta, None);
    let [b, t, d] = hidden.dims();
    let device = hidden.device();
    let n = at.len();
    if n == 0 {
        return (Tensor::zeros([b], &device), None);
    }
    let at: Tensor<1, Int> = Tensor::from_data(TensorData::new(at, [n]), &device);
    // [positions, vocab]
    let picked = model.logits(hidden.reshape([b * t, d]).select(0, at));
    let next: Tensor<2, Int> = Tensor::from_data(TensorData::new(next, [n, 1]), &device);
    // [positions, 1]
    let logprobs = log_softmax(picked, 1).gather(1, next);
    // Summed per row: a [rows + 1, positions] membership matrix (its last row gathers the
    // prompt tokens) times the log-probabilities.
    let mut membership = vec![0.0f32; (b + 1) * n];
    for (j, r) in owner.iter().enumerate() {
        membership[r.unwrap_or(b) * n + j] = 1.0;
    }
    let membership: Tensor<2> = Tensor::from_data(TensorData::new(membership, [b + 1, n]), &device);
    let sums = membership.matmul(logprobs).reshape([b + 1]);
    let prompts = prompt.then(|| sums.clone().slice([b..b + 1]));
    (sums.slice([0..b]), prompts)
}

/// Mean loss per target token (DPO: per pair) over `examples`, without gradients.
pub fn evaluate(model: &Qwen3ForCausalLM, examples: &[Example], loss: Loss, batch_size: usize, pad_id: u32, rope_theta: f64) -> f64 {
    let model = model.valid();
    let mut total = 0.0;
    let mut count = 0;
    for chunk in examples.chunks(batch_size.max(1)) {
        let rows: Vec<&Example> = chunk.iter().collect();
        total += f64::from(scalar(summed_loss(&model, &rows, loss, pad_id, rope_theta)));
        count += loss.units(chunk.iter())[0];
    }
    total / count.max(1) as f64
}

/// Writes the model (full weights, or the adapter for LoRA) with its config, tokenizer and the
/// option readout it was trained under.
fn write_model_into(tmp: &Path, job: &TrainJob, config: &Qwen3Config, model: &Qwen3ForCausalLM, readout: Option<&OptionReadout>) -> Result<()> {
    write_model_files(tmp, config, job.init)?;
    if let Some(readout) = readout {
        readout.write(tmp)?;
    }
    match &job.config.lora {
        Some(lora) => {
            let base = std::fs::canonicalize(job.init).map_err(|e| TrainerError::io(job.init, e))?;
            simforge_data::fsutil::write_json(&tmp.join(ADAPTER_CONFIG), &AdapterConfig::new(lora, &base))?;
            write_safetensors(&tmp.join(ADAPTER_WEIGHTS), &adapter_tensors(model))
        }
        None => write_safetensors(&tmp.join("model.safetensors"), &model_tensors(model)),
    }
}

fn save_checkpoint(
    job: &TrainJob,
    config: &Qwen3Config,
    model: &Qwen3ForCausalLM,
    readout: Option<&OptionReadout>,
    optimizer: &AdamW,
    state: &TrainerState,
) -> Result<()> {
    let dir = job.out.join(format!("checkpoint-{}", state.step));
    write_dir_atomically(&dir, |tmp| {
        write_model_into(tmp, job, config, model, readout)?;
        let state_dir = tmp.join(STATE_DIR);
        std::fs::create_dir_all(&state_dir).map_err(|e| TrainerError::io(&state_dir, e))?;
        simforge_data::fsutil::write_json(&state_dir.join("state.json"), state)?;
        optimizer.write_moments(&state_dir.join("optimizer.safetensors"))
    })?;
    // Older checkpoints beyond the ones kept go, newest first kept.
    let mut all = checkpoints(job.out)?;
    all.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
    for (_, old) in all.into_iter().skip(job.config.keep_checkpoints.max(1)) {
        std::fs::remove_dir_all(&old).map_err(|e| TrainerError::io(&old, e))?;
    }
    Ok(())
}

fn read_state(dir: &Path) -> Result<TrainerState> {
    Ok(simforge_data::fsutil::read_json(&dir.join(STATE_DIR).join("state.json"))?)
}

/// The `checkpoint-<step>/` folders of a run's output folder, in step order.
pub fn checkpoints(out: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let entries = std::fs::read_dir(out).map_err(|e| TrainerError::io(out, e))?;
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let step = e.file_name().to_str()?.strip_prefix("checkpoint-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Training examples one optimizer step of the run that wrote `checkpoint` took (batch size ×
/// gradient accumulation).
pub fn examples_per_step(checkpoint: &Path) -> Result<usize> {
    let config = read_state(checkpoint)?.config;
    Ok(config.batch_size * config.grad_accum)
}

/// The newest complete checkpoint (folders appear only once complete).
pub fn latest_checkpoint(out: &Path) -> Result<Option<(usize, PathBuf)>> {
    if !out.is_dir() {
        return Ok(None);
    }
    Ok(checkpoints(out)?.into_iter().max_by_key(|(s, _)| *s))
}

/// Creates `out` and returns the checkpoint to resume from. A fresh run owns the folder: an
/// earlier run's checkpoints (and SASRec's `best/`) go, or a later `--resume` would continue that
/// run instead; but when one of them, or the earlier final `model/`, holds an input of this run
/// (`--model out/checkpoint-20 --out out`), the run is refused and nothing is deleted.
pub(crate) fn prepare_output(out: &Path, resume: bool, inputs: &[&Path]) -> Result<Option<(usize, PathBuf)>> {
    std::fs::create_dir_all(out).map_err(|e| TrainerError::io(out, e))?;
    if resume {
        return latest_checkpoint(out);
    }
    let mut earlier: Vec<PathBuf> = checkpoints(out)?.into_iter().map(|(_, dir)| dir).collect();
    earlier.extend([out.join(BEST_MODEL), out.join(FINAL_MODEL)].into_iter().filter(|d| d.is_dir()));
    for input in inputs.iter().filter_map(|p| p.canonicalize().ok()) {
        if let Some(dir) = earlier.iter().find(|dir| dir.canonicalize().is_ok_and(|d| input.starts_with(d))) {
            return Err(TrainerError::settings(
                "--out",
                format!(
                    "{} holds {}, an input of this run, which a fresh run would replace; choose another --out, or pass --resume",
                    out.display(),
                    dir.display()
                ),
            ));
        }
    }
    // The final model stays until the new one replaces it, atomically.
    for dir in earlier.iter().filter(|d| !d.ends_with(FINAL_MODEL)) {
        std::fs::remove_dir_all(dir).map_err(|e| TrainerError::io(dir, e))?;
    }
    Ok(None)
}

/// Keeps the metric lines `keep` accepts (a resumed run drops those past its checkpoint).
pub(crate) fn keep_metrics_where<T: serde::de::DeserializeOwned>(path: &Path, keep: impl Fn(&T) -> bool) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text.lines().filter(|l| serde_json::from_str::<T>(l).is_ok_and(|m| keep(&m))).map(|l| format!("{l}\n")).collect();
    std::fs::write(path, kept).map_err(|e| TrainerError::io(path, e))
}

pub(crate) fn append_metrics(path: &Path, metrics: &impl Serialize) -> Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| TrainerError::io(path, e))?;
    let line = serde_json::to_string(metrics)?;
    writeln!(file, "{line}").map_err(|e| TrainerError::io(path, e))
}
