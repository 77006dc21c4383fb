//! SASRec training: BCE with sampled negatives (or a sampled softmax), Adam, validation
//! NDCG@10 with early stopping, resumable epoch checkpoints.
//!
//! Output folder: `checkpoint-<epoch>/` (the newest epoch, resumable), `best/` (the best validation epoch so
//! far), `metrics.jsonl`, and at the end `model/`: the best model with its optimizer state and
//! `histories.parquet`, ready for [`crate::sasrec::Recommender`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use simforge_data::rng::Rng;

use crate::checkpoint::write_dir_atomically;
use crate::error::{Result, TrainerError};
use crate::models::sasrec::{SasRec, SasRecConfig, SequenceBatch};
use crate::models::{softplus, SeededDropout};
use crate::sasrec::data::{sample_unseen, sorted_set, Histories, LeaveOneOut};
use crate::sasrec::evaluate::{evaluate, sample_cases, Case, Protocol, RankingReport};
use crate::sasrec::{ModelFiles, TrainerState};
use crate::tensors::host;
use crate::train::optim::{AdamW, GradientSum};
use crate::train::{append_metrics, checkpoints, keep_metrics_where, prepare_output, BEST_MODEL};

pub const METRICS_FILE: &str = "metrics.jsonl";

/// How a position's positive item is scored against its sampled negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SasRecLoss {
    /// Binary cross-entropy: the positive towards 1, each negative towards 0 (the paper's).
    #[default]
    Bce,
    /// Cross-entropy of the positive among itself and the negatives (SASRec+ / gSASRec style).
    #[serde(alias = "sampled-softmax")]
    SampledSoftmax,
}

/// A recipe's `[sasrec]` section (the architecture under `[sasrec.model]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SasRecTrainConfig {
    pub model: SasRecConfig,
    /// Passes over the training users.
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// λ of an L2 penalty λ·‖E‖² on the item embeddings (0: none).
    pub l2_emb: f64,
    pub loss: SasRecLoss,
    /// Sampled negatives per position.
    pub negatives: usize,
    /// Batch users of similar history length (far less padding; see [`epoch_batches`]).
    pub bucket_by_length: bool,
    /// Validate every N epochs (0: never; the last epoch's model is kept).
    pub eval_every: usize,
    /// Stop after this many validations without a better NDCG@10 (0: never stop early).
    pub patience: usize,
    /// Protocol of the validation that picks the best epoch.
    pub protocol: Protocol,
    /// Users evaluated at most (a seeded sample when there are more; 0: all).
    pub eval_users: usize,
    /// Seed of the initialisation, order, negatives and dropout (a recipe's run seed when unset).
    pub seed: Option<u64>,
}

impl Default for SasRecTrainConfig {
    fn default() -> Self {
        Self {
            model: SasRecConfig::default(),
            epochs: 200,
            batch_size: 128,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            l2_emb: 0.0,
            loss: SasRecLoss::Bce,
            negatives: 1,
            bucket_by_length: true,
            eval_every: 20,
            patience: 5,
            protocol: Protocol::Sampled,
            eval_users: 10_000,
            seed: None,
        }
    }
}

impl SasRecTrainConfig {
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    pub fn problem(&self) -> Option<String> {
        if let Some(p) = self.model.problem() {
            return Some(p);
        }
        if self.batch_size == 0 || self.negatives == 0 {
            return Some("batch_size and negatives must be positive".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Some(format!("lr must be a positive number, got {}", self.lr));
        }
        if self.epochs == 0 {
            return Some("epochs must be at least 1".into());
        }
        if !((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2) && self.l2_emb >= 0.0 && self.l2_emb.is_finite()) {
            return Some(format!("beta1 and beta2 must be in [0, 1) and l2_emb a non-negative number, got {}, {}, {}", self.beta1, self.beta2, self.l2_emb));
        }
        None
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub loss: f64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid: Option<RankingReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SasRecSummary {
    pub epochs: usize,
    pub resumed_from: Option<usize>,
    pub best_epoch: usize,
    pub train_users: usize,
    pub items: usize,
    pub parameters: usize,
    pub seconds_per_epoch: f64,
    pub model: PathBuf,
    /// Test-target metrics of the final model under both protocols.
    pub test: Vec<RankingReport>,
}

pub struct SasRecJob<'a> {
    /// A data-prep dataset folder.
    pub data: &'a Path,
    pub out: &'a Path,
    pub config: &'a SasRecTrainConfig,
    pub device: Device,
    pub resume: bool,
}

/// Trains on `job.data`'s leave-one-out split, calling `progress` with each finished epoch and
/// with (batch, batches) inside one.
pub fn train_sasrec(job: &SasRecJob, progress: &mut dyn FnMut(Progress)) -> Result<SasRecSummary> {
    // 1. Data and settings.
    let histories = Histories::from_dataset(job.data)?;
    let split = LeaveOneOut::new(&histories);
    let mut config = job.config.clone();
    config.model.num_items = histories.num_items;
    if let Some(problem) = config.problem() {
        return Err(TrainerError::settings("sasrec settings", problem));
    }
    let valid_cases = sample_cases(cases(&split, &histories, false), config.eval_users, config.seed());

    // 2. The model and optimizer: fresh, or the newest checkpoint's.
    let latest = prepare_output(job.out, job.resume, &[job.data])?;
    let (mut files, mut state) = match &latest {
        Some((_, dir)) => {
            let files = ModelFiles::read(dir, &job.device)?;
            let mut state = files.state.clone().ok_or_else(|| TrainerError::checkpoint(dir, "has no trainer_state/"))?;
            // More epochs or patience extend a run; anything else would be a different run.
            let mut written = state.config.clone();
            (written.epochs, written.patience) = (config.epochs, config.patience);
            if written != config {
                return Err(TrainerError::checkpoint(dir, "was written with different settings or data; resume with the same ones (only --epochs and --patience may change) or start a new output folder"));
            }
            state.config = config.clone();
            (files, state)
        }
        None => {
            let model = SasRec::init(&config.model, config.seed(), &job.device);
            let optimizer = AdamW::adam(config.beta1, config.beta2);
            (ModelFiles { config: config.model.clone(), model, optimizer: Some(optimizer), state: None, histories: None }, TrainerState::new(&config))
        }
    };
    let metrics_path = job.out.join(METRICS_FILE);
    keep_metrics_where(&metrics_path, |m: &EpochMetrics| m.epoch <= state.epoch)?;
    let mut optimizer = files.optimizer.take().unwrap_or_else(|| AdamW::adam(config.beta1, config.beta2));
    let mut model = files.model.train();
    let resumed_from = latest.map(|(epoch, _)| epoch);

    // 3. Epochs, with validation and early stopping.
    let train: Vec<&[u32]> = split.train.clone();
    let clock = Instant::now();
    let first = state.epoch;
    while state.epoch < config.epochs && !(config.patience > 0 && state.evals_since_best >= config.patience) {
        let started = Instant::now();
        let (trained, loss) = run_epoch(model, &mut optimizer, &train, &config, state.epoch, &mut |b, n| {
            progress(Progress::Batch { epoch: state.epoch + 1, batch: b, batches: n })
        })?;
        model = trained;
        state.epoch += 1;
        state.adam_step = optimizer.step;
        let mut line = EpochMetrics { epoch: state.epoch, loss, seconds: started.elapsed().as_secs_f64(), valid: None };
        let snapshot = model.valid();
        let validate = config.eval_every > 0 && (state.epoch % config.eval_every == 0 || state.epoch == config.epochs);
        if validate {
            let report = evaluate(&snapshot, &valid_cases, config.protocol, histories.num_items, config.seed());
            let score = report.get("ndcg@10");
            if state.best_epoch == 0 || score > state.best_ndcg10 {
                (state.best_ndcg10, state.best_epoch, state.evals_since_best) = (score, state.epoch, 0);
                save(&job.out.join(BEST_MODEL), &snapshot, &optimizer, &state, None)?;
            } else {
                state.evals_since_best += 1;
            }
            line.valid = Some(report);
        }
        append_metrics(&metrics_path, &line)?;
        // Every epoch ends in a checkpoint (small next to an epoch's work); only the newest stays.
        save(&job.out.join(format!("checkpoint-{}", state.epoch)), &snapshot, &optimizer, &state, None)?;
        for (epoch, dir) in checkpoints(job.out)? {
            if epoch != state.epoch {
                std::fs::remove_dir_all(&dir).map_err(|e| TrainerError::io(&dir, e))?;
            }
        }
        progress(Progress::Epoch(&line));
    }

    // 4. The final model: the best validated epoch (or the last), with the full histories.
    let final_dir = job.out.join("model");
    let best_dir = job.out.join(BEST_MODEL);
    let files = if best_dir.is_dir() {
        ModelFiles::read(&best_dir, &job.device)?
    } else {
        ModelFiles { config: config.model.clone(), model: model.valid(), optimizer: Some(optimizer), state: Some(state.clone()), histories: None }
    };
    let model = files.model;
    let optimizer = files.optimizer.unwrap_or_else(|| AdamW::adam(config.beta1, config.beta2));
    let final_state = files.state.unwrap_or_else(|| state.clone());
    save(&final_dir, &model, &optimizer, &final_state, Some(&histories))?;
    let test_cases = sample_cases(cases(&split, &histories, true), config.eval_users, config.seed());
    let test = [Protocol::Sampled, Protocol::Full].map(|p| evaluate(&model, &test_cases, p, histories.num_items, config.seed())).to_vec();
    let ran = state.epoch - first;
    Ok(SasRecSummary {
        epochs: state.epoch,
        resumed_from,
        best_epoch: final_state.epoch,
        train_users: train.iter().filter(|s| s.len() >= 2).count(),
        items: histories.num_items,
        parameters: model.parameter_count(),
        seconds_per_epoch: if ran > 0 { clock.elapsed().as_secs_f64() / ran as f64 } else { 0.0 },
        model: final_dir,
        test,
    })
}

/// What [`train_sasrec`] reports while it runs.
pub enum Progress<'a> {
    Batch { epoch: usize, batch: usize, batches: usize },
    Epoch(&'a EpochMetrics),
}

/// The validation (`test = false`) or test cases of a leave-one-out split.
pub fn cases<'a>(split: &'a LeaveOneOut, histories: &'a Histories, test: bool) -> Vec<Case<'a>> {
    let full = &histories.sequences;
    (0..full.len())
        .filter_map(|u| {
            let target = if test { split.test[u]? } else { split.valid[u]? };
            let input = &full[u][..split.train[u].len() + usize::from(test)];
            Some(Case { input, target, history: &full[u] })
        })
        .collect()
}

/// One pass over every user with at least two training items, in a seeded order; returns the
/// mean batch loss. Epoch `epoch` (0-based) seeds its order, negatives and dropout.
pub fn run_epoch(
    mut model: SasRec,
    optimizer: &mut AdamW,
    train: &[&[u32]],
    config: &SasRecTrainConfig,
    epoch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(SasRec, f64)> {
    let batches = epoch_batches(train, config, epoch);
    // Bucketed batches differ in length; dividing each one's summed loss by the mean positions
    // per batch (not its own count) weighs every position alike, as random batches do on
    // average. With a per-batch mean, a short-history batch's positions would each weigh up
    // to max_len times more, which measurably slowed learning on Games.
    let per_batch = config.bucket_by_length.then(|| {
        let positions: usize = batches.iter().flatten().map(|&u| (train[u].len() - 1).min(config.model.max_len)).sum();
        positions as f64 / batches.len().max(1) as f64
    });
    let mut total = 0.0;
    for (b, rows) in batches.iter().enumerate() {
        let stream = ((epoch as u64) << 32) | b as u64;
        let sequences: Vec<&[u32]> = rows.iter().map(|&u| train[u]).collect();
        let dropout = SeededDropout::new(config.model.dropout, Rng::stream(config.seed(), "dropout", stream).next_u64());
        let loss = batch_loss(&model, &sequences, config, per_batch, &mut Rng::stream(config.seed(), "negatives", stream), dropout);
        let value = f64::from(host(loss.clone()).first().copied().unwrap_or(f32::NAN));
        if !value.is_finite() {
            return Err(TrainerError::Diverged { message: format!("epoch {}, batch {b}: the loss is {value}; lower lr or check the data", epoch + 1) });
        }
        total += value;
        let mut grads = GradientSum::default();
        grads.add(&model, loss.backward());
        model = optimizer.apply(model, grads, config.lr);
        progress(b + 1, batches.len());
    }
    Ok((model, total / batches.len().max(1) as f64))
}

/// Users whose histories sort close together pad to similar lengths. Bucketing shuffles the
/// users, sorts windows of `BUCKET_WINDOW` batches by history length, cuts them into batches
/// and shuffles the batches: each batch is still a random draw from its window.
const BUCKET_WINDOW: usize = 32;

/// The users of epoch `epoch` (with at least two training items) cut into batches.
fn epoch_batches(train: &[&[u32]], config: &SasRecTrainConfig, epoch: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng::stream(config.seed(), "epoch-order", epoch as u64);
    let mut users: Vec<usize> = (0..train.len()).filter(|&u| train[u].len() >= 2).collect();
    rng.shuffle(&mut users);
    if !config.bucket_by_length {
        return users.chunks(config.batch_size).map(<[usize]>::to_vec).collect();
    }
    let length = |u: &usize| train[*u].len().min(config.model.max_len + 1);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in users.chunks_mut(config.batch_size * BUCKET_WINDOW) {
        window.sort_by_key(length);
        batches.extend(window.chunks(config.batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// The loss of one batch: each sequence's items predict their successors. Summed over the
/// positions and divided by `positions` when given, else by the batch's own count.
fn batch_loss(model: &SasRec, sequences: &[&[u32]], config: &SasRecTrainConfig, positions: Option<f64>, rng: &mut Rng, dropout: SeededDropout) -> Tensor<1> {
    let max_len = config.model.max_len;
    let inputs: Vec<&[u32]> = sequences.iter().map(|s| &s[..s.len() - 1]).collect();
    let batch = SequenceBatch::new(&inputs, max_len);
    let [b, t] = batch.dims();
    let (n, c) = (config.negatives, config.negatives + 1);
    // Row r, position i: positive first, then negatives; padded positions weigh 0.
    let mut candidates = Vec::with_capacity(b * t);
    let mut weights = Vec::with_capacity(b * t);
    for s in sequences {
        let targets = &s[1..];
        let real = targets.len().min(t);
        let seen = sorted_set(s);
        for _ in 0..t - real {
            candidates.push(vec![0; c]);
            weights.push(0.0f32);
        }
        for &positive in &targets[targets.len() - real..] {
            let mut row = Vec::with_capacity(c);
            row.push(positive);
            row.extend((0..n).map(|_| sample_unseen(rng, config.model.num_items, &seen)));
            candidates.push(row);
            weights.push(1.0);
        }
    }
    let device = model.item_embedding.val().device();
    let hidden = model.forward(&batch, dropout);
    let logits = model.score(hidden, &candidates); // [b·t, 1 + n]
    let positive = logits.clone().slice([0..b * t, 0..1]).reshape([b * t]);
    let per_position = match config.loss {
        SasRecLoss::Bce => softplus(positive.neg()) + softplus(logits.slice([0..b * t, 1..c])).sum_dim(1).reshape([b * t]),
        SasRecLoss::SampledSoftmax => {
            let max = logits.clone().max_dim(1).detach();
            (logits - max.clone()).exp().sum_dim(1).log().reshape([b * t]) + max.reshape([b * t]) - positive
        }
    };
    let count = positions.unwrap_or_else(|| f64::from(weights.iter().sum::<f32>())).max(1.0);
    let weights: Tensor<1> = Tensor::from_data(TensorData::new(weights, [b * t]), &device);
    let loss = (per_position * weights).sum().div_scalar(count);
    if config.l2_emb > 0.0 {
        loss + model.item_embedding.val().powi_scalar(2).sum().mul_scalar(config.l2_emb)
    } else {
        loss
    }
}

fn save(dir: &Path, model: &SasRec, optimizer: &AdamW, state: &TrainerState, histories: Option<&Histories>) -> Result<()> {
    write_dir_atomically(dir, |tmp| ModelFiles::write_parts(tmp, &state.config.model, model, Some(optimizer), Some(state), histories))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trainable_user_lands_in_one_batch_per_epoch() {
        let histories: Vec<Vec<u32>> = (0..300).map(|u| (0..(u % 37) as u32).collect()).collect();
        let train: Vec<&[u32]> = histories.iter().map(Vec::as_slice).collect();
        for bucket_by_length in [true, false] {
            let config = SasRecTrainConfig { batch_size: 16, bucket_by_length, seed: Some(5), ..SasRecTrainConfig::default() };
            let batches = epoch_batches(&train, &config, 0);
            let mut users: Vec<usize> = batches.concat();
            users.sort_unstable();
            let expected: Vec<usize> = (0..300).filter(|u| u % 37 >= 2).collect();
            assert_eq!(users, expected, "bucketing {bucket_by_length}");
            assert!(batches.iter().all(|b| b.len() <= 16));
            assert_eq!(batches, epoch_batches(&train, &config, 0), "seeded");
            assert_ne!(batches, epoch_batches(&train, &config, 1), "each epoch draws anew");
        }
    }
}
