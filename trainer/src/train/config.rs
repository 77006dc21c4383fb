//! Training settings as a recipe's `[dapt]` / `[sft]` section and `simforge train` flags.

use serde::{Deserialize, Serialize};

/// What the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Domain-adaptive pre-training: every token of packed text documents.
    Dapt,
    /// Supervised fine-tuning: assistant tokens of chat records only.
    Sft,
    /// Direct preference optimisation on (prompt, chosen, rejected) records, against the
    /// starting model as the reference.
    Dpo,
    /// The reading exercise on a scenes table, under the option readout: for every option
    /// line, whether it holds a category the profile states as liked (binary cross-entropy).
    Reading,
}

/// How a scene's answer is read from the model when it is trained on its choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readout {
    /// The assistant's answer (`Behavior: [X]`) after the prompt, token by token.
    #[default]
    Answer,
    /// One score per option at the end of its line, a softmax over the options (listwise
    /// cross-entropy against the real choice, or a table's `teacher_probs`); see `readout.rs`.
    Options,
}

/// A projection of a Qwen3 layer that can carry a low-rank adapter (PEFT's `target_modules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 7] = [Self::QProj, Self::KProj, Self::VProj, Self::OProj, Self::GateProj, Self::UpProj, Self::DownProj];

    /// The projection's name in checkpoints (`q_proj`).
    pub fn name(self) -> &'static str {
        match self {
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// The block of a layer it belongs to (`self_attn` or `mlp`).
    pub fn block(self) -> &'static str {
        match self {
            Self::GateProj | Self::UpProj | Self::DownProj => "mlp",
            _ => "self_attn",
        }
    }
}

impl std::fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LoraTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("lora target {s:?} is not a projection; choose from {}", Self::ALL.map(Self::name).join(", ")))
    }
}

/// Low-rank adapters on chosen projections; everything else stays frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Dropout on the adapter's input (PEFT's `lora_dropout`).
    pub dropout: f64,
    /// Projections that get adapters.
    pub targets: Vec<LoraTarget>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0, dropout: 0.05, targets: LoraTarget::ALL.to_vec() }
    }
}

/// One training run. Steps are optimizer steps; a step sees `batch_size * grad_accum` sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training examples.
    pub epochs: usize,
    /// Stop after this many optimizer steps (before the epochs run out).
    pub max_steps: Option<usize>,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients add up to one optimizer step.
    pub grad_accum: usize,
    /// Tokens per sequence: packed chunk length (DAPT) or the longest record kept (SFT).
    pub seq_len: usize,
    /// Peak learning rate, reached after the warm-up.
    pub lr: f64,
    /// Fraction of the steps spent warming up linearly from 0; cosine decay to 0 follows.
    pub warmup_ratio: f64,
    /// AdamW's decoupled weight decay, on weight matrices (not norms, biases).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip gradients to this global L2 norm (0 disables).
    pub max_grad_norm: f64,
    /// Evaluate on the held-out examples every N steps (0: only at the end).
    pub eval_every: usize,
    /// Fraction of examples held out for evaluation when the data has no `split` column.
    pub eval_fraction: f64,
    /// Held-out examples evaluated at most (the first ones, in table order).
    pub max_eval_examples: usize,
    /// Write a resumable checkpoint every N steps (0: none).
    pub save_every: usize,
    /// Intermediate checkpoints kept (the newest ones).
    pub keep_checkpoints: usize,
    /// Seed for data order, held-out choice, adapter init and dropout.
    pub seed: Option<u64>,
    /// DPO's β: how far the policy may move from the reference (DPO only).
    pub dpo_beta: f64,
    /// SFT: the weight of the next-token loss on the prompt's tokens beside the answer's (0: the
    /// answer only). Reading the prompt as text teaches a small model what a user repeats.
    pub prompt_loss_weight: f64,
    /// SFT on scenes: how the choice is read, `answer` or `options`.
    pub readout: Readout,
    /// Low-rank adaptation instead of full fine-tuning.
    pub lora: Option<LoraConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            seq_len: 512,
            lr: 2e-4,
            warmup_ratio: 0.03,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: 1.0,
            eval_every: 0,
            eval_fraction: 0.05,
            max_eval_examples: 256,
            save_every: 0,
            keep_checkpoints: 2,
            seed: None,
            dpo_beta: 0.1,
            prompt_loss_weight: 0.0,
            readout: Readout::Answer,
            lora: None,
        }
    }
}

impl TrainConfig {
    /// What is wrong with the settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.batch_size == 0 || self.grad_accum == 0 || self.seq_len < 2 || self.epochs == 0 || self.max_steps == Some(0) {
            return Some("batch_size, grad_accum, epochs and max_steps must be at least 1, seq_len at least 2".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Some(format!("lr must be positive, found {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) || !(0.0..1.0).contains(&self.eval_fraction) {
            return Some("warmup_ratio and eval_fraction must be in [0, 1)".into());
        }
        if !((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2) && self.eps > 0.0 && self.eps.is_finite()) {
            return Some(format!("beta1 and beta2 must be in [0, 1) and eps a positive number, found {}, {}, {}", self.beta1, self.beta2, self.eps));
        }
        if !((0.0..1.0).contains(&self.weight_decay) && self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            return Some(format!(
                "weight_decay must be in [0, 1) and max_grad_norm a non-negative number, found {}, {}",
                self.weight_decay, self.max_grad_norm
            ));
        }
        if !(self.prompt_loss_weight >= 0.0 && self.prompt_loss_weight.is_finite()) {
            return Some(format!("prompt_loss_weight must be a non-negative number, found {}", self.prompt_loss_weight));
        }
        if !(self.dpo_beta > 0.0 && self.dpo_beta.is_finite()) {
            return Some(format!("dpo_beta must be positive, found {}", self.dpo_beta));
        }
        if let Some(lora) = &self.lora {
            if lora.rank == 0 || !(0.0..1.0).contains(&lora.dropout) {
                return Some("lora.rank must be at least 1 and lora.dropout in [0, 1)".into());
            }
            if lora.targets.is_empty() {
                return Some("lora.targets is empty".into());
            }
        }
        None
    }
}
