//! simforge-trainer: the burn models and training loops (Qwen3 causal LM, LoRA, SASRec). Empty until the trainer issues land.
