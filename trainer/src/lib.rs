//! simforge-trainer: the burn models (Qwen3 causal LM, SASRec), their training loops,
//! Hugging Face checkpoint loading, and the device choice.

pub mod checkpoint;
pub mod device;
pub mod distill;
pub mod error;
pub mod hub;
pub mod inference;
pub mod init;
pub mod models;
pub mod openai;
pub mod sasrec;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Result, TrainerError};
/// The burn this crate builds on, for callers that handle its modules and tensors.
pub use burn;
