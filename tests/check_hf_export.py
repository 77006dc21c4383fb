"""Checks that simforge's exported folders load in transformers and PEFT with the same logits.

Usage (needs torch, transformers, peft; not part of CI):
    simforge export --model RUN/model --out MERGED --merge-lora
    simforge export --model RUN/model --out ADAPTER
    python tests/check_hf_export.py MERGED ADAPTER SIMFORGE_BINARY
Loads MERGED with AutoModelForCausalLM, ADAPTER with PeftModel on its base, and compares the
last-position logits of a few token sequences with `simforge lm logits` (max abs diff < 1e-4).
"""
import json
import subprocess
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

merged_dir, adapter_dir, binary = sys.argv[1:4]
sequences = [[5, 9, 14, 3, 7, 21, 30], [11, 2, 40, 8]]

def last_logits(model, seq):
    with torch.no_grad():
        return model(torch.tensor([seq])).logits[0, -1].float().numpy()

def simforge(model_dir):
    args = [binary, "lm", "logits", "--model", model_dir]
    for s in sequences:
        args += ["--ids", " ".join(map(str, s))]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["logits"]

merged = AutoModelForCausalLM.from_pretrained(merged_dir, torch_dtype=torch.float32).eval()
config = json.load(open(f"{adapter_dir}/adapter_config.json"))
base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"], torch_dtype=torch.float32)
peft = PeftModel.from_pretrained(base, adapter_dir).eval()
AutoTokenizer.from_pretrained(merged_dir)  # the tokenizer.json loads too

ours = simforge(merged_dir)
worst = 0.0
for seq, mine in zip(sequences, ours):
    for model in (merged, peft):
        worst = max(worst, float(abs(last_logits(model, seq) - torch.tensor(mine).numpy()).max()))
print(json.dumps({"max_abs_diff": worst}))
sys.exit(0 if worst < 1e-4 else 1)
