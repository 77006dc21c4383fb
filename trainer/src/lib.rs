//! simforge-trainer: the burn models (Qwen3 causal LM, SASRec), their training loops,
//! Hugging Face checkpoint loading, and the device choice.

pub mod agent;
pub mod checkpoint;
pub mod device;
pub mod distill;
pub mod error;
pub mod hub;
pub mod inference;
pub mod init;
pub mod models;
pub mod openai;
pub mod readout;
pub mod requests;
pub mod sasrec;
pub mod tensors;
pub mod tokenizer;
pub mod train;
pub mod weights;

/// The burn this crate builds on, for callers that handle its modules and tensors.
pub use burn;
pub use error::{Result, TrainerError};
