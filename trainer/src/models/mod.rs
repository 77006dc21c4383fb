//! Models, one file each.

pub mod qwen3;
