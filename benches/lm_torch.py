"""PyTorch + transformers baseline for `simforge bench lm`: the same Qwen3 config with random
weights, the same batch and sequence length, f32, eager, no grad; prints seconds per forward.

Run: python3 benches/lm_torch.py CONFIG_JSON BATCH SEQ_LEN REPS
"""
import json
import sys
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

config_path, batch, seq, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fields = json.load(open(config_path))
config = Qwen3Config(**{k: v for k, v in fields.items() if k not in ("model_type", "architectures")})
torch.manual_seed(0)
model = Qwen3ForCausalLM(config).float().eval()
ids = torch.randint(0, config.vocab_size, (batch, seq))
with torch.no_grad():
    model(input_ids=ids)  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        model(input_ids=ids).logits[:, -1, :].sum().item()
    seconds = (time.perf_counter() - start) / reps
print(json.dumps({"seconds_per_forward": seconds, "threads": torch.get_num_threads(), "torch": torch.__version__}))
