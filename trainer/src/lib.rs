//! simforge-trainer: the burn models (Qwen3 causal LM; SASRec and training loops to come),
//! Hugging Face checkpoint loading, and the device choice.

pub mod checkpoint;
pub mod device;
pub mod error;
pub mod inference;
pub mod init;
pub mod models;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Result, TrainerError};
