"""PyTorch + transformers baseline for `simforge bench lm`: the same Qwen3 config with random
weights, the same batch and sequence length, f32, eager. `score` times a no-grad forward
(logits at the last position); `train` times forward + loss + backward + global-norm clipping +
AdamW step. Prints {"seconds": mean seconds per repetition after one warm-up, ...}.

Run: python3 benches/lm_torch.py CONFIG_JSON BATCH SEQ_LEN REPS [score|train] [cpu|wgpu|cuda]
"""
import json
import sys
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

config_path, batch, seq, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "score"
device = "cuda" if len(sys.argv) > 6 and sys.argv[6] != "cpu" and torch.cuda.is_available() else "cpu"
fields = json.load(open(config_path))
config = Qwen3Config(**{k: v for k, v in fields.items() if k not in ("model_type", "architectures")})
config._attn_implementation = "eager"
torch.manual_seed(0)
model = Qwen3ForCausalLM(config).float().to(device)
ids = torch.randint(0, config.vocab_size, (batch, seq), device=device)


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


if mode == "score":
    model.eval()

    def step():
        with torch.no_grad():
            model(input_ids=ids).logits[:, -1, :].sum().item()
else:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.0)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

step()  # warm-up
sync()
start = time.perf_counter()
for _ in range(reps):
    step()
sync()
seconds = (time.perf_counter() - start) / reps
print(json.dumps({"seconds": seconds, "mode": mode, "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__}))
