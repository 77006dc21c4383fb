//! The starting model of a run (a recipe's `[model]`): an existing Hugging Face folder, or the
//! `tiny` config trained from scratch with a byte-level BPE learned on the run's corpus.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use simforge_data::parquet_io::Table;

use crate::checkpoint::write_random_init;
use crate::error::{Result, TrainerError};
use crate::models::qwen3::Qwen3Config;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `tiny` (a few million parameters, trained from scratch) or a checkpoint folder.
    pub base: String,
    /// Vocabulary of the BPE tokenizer a tiny model learns on the corpus.
    pub vocab_size: usize,
    /// Seed of the tiny model's random weights (default: the run's seed).
    pub seed: Option<u64>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { base: "tiny".into(), vocab_size: 2048, seed: None }
    }
}

impl ModelConfig {
    pub fn is_tiny(&self) -> bool {
        self.base == "tiny"
    }
}

/// Writes a tiny model into `out`: a BPE tokenizer trained on the `text` column of `corpus`
/// and seeded random weights.
pub fn init_tiny(corpus: &Path, out: &Path, config: &ModelConfig, device: &Device) -> Result<Qwen3Config> {
    if config.vocab_size < 256 + crate::tokenizer::SPECIAL_TOKENS.len() {
        return Err(TrainerError::settings("vocab_size", format!("{} is below the 261 byte and special tokens", config.vocab_size)));
    }
    let texts = Table::read(corpus)?.strings("text")?;
    let tokenizer = Tokenizer::train_byte_level_bpe(texts.iter(), config.vocab_size)?;
    let model = Qwen3Config::tiny(tokenizer.vocab_size());
    write_random_init(out, &model, &tokenizer, config.seed.unwrap_or(0), device)?;
    Ok(model)
}
