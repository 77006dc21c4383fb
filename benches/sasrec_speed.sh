#!/usr/bin/env bash
# SASRec training speed: simforge (with and without length bucketing) against the reference
# PyTorch port, same data and hyperparameters, in one run. Prints one JSON object.
#
#   benches/sasrec_speed.sh PMIXER_PYTHON_DIR [DATA_TXT] [EPOCHS] [MAX_LEN] [DROPOUT] [PYTHON]
#
# PMIXER_PYTHON_DIR: the python/ folder of a github.com/pmixer/SASRec.pytorch checkout.
# Defaults: ../shared/datasets/amazon-games-sasrec/Video.txt, 3 epochs, 50, 0.5, python3.
# SIMFORGE=path/to/simforge (default target/release/simforge); DEVICE=wgpu (a --features wgpu
# build) times simforge on the GPU and PyTorch on CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=$1
data=${2:-../shared/datasets/amazon-games-sasrec/Video.txt}
epochs=${3:-3}
max_len=${4:-50}
dropout=${5:-0.5}
python=${6:-python3}
bin=${SIMFORGE:-target/release/simforge}
device=${DEVICE:-cpu}
torch_device=$([ "$device" = cpu ] && echo cpu || echo cuda)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" prep --format sasrec --input "$data" --out "$work/data" > /dev/null
run() { # extra flags → seconds per epoch (the first epoch is a warm-up and not counted)
  "$bin" train sasrec --data "$work/data" --out "$work/run" --epochs $((epochs + 1)) --eval-every 0 --max-len "$max_len" --dropout "$dropout" --device "$device" "$@" 2> "$work/log" > /dev/null
  grep -o 'in [0-9.]*s' "$work/log" | tail -n "$epochs" | tr -d 'ins ' | awk '{s += $1} END {printf "%.3f", s / NR}'
}
bucketed=$(run)
padded=$(run --no-bucketing)
torch=$("$python" benches/sasrec_torch.py "$ref" "$data" "$epochs" "$max_len" "$dropout" "$torch_device")
torch_s=$(echo "$torch" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["seconds_per_epoch"])')
"$python" - "$bucketed" "$padded" "$torch_s" "$torch" <<'PY'
import json, sys
bucketed, padded, torch_s = map(float, sys.argv[1:4])
print(json.dumps({
    "simforge_seconds_per_epoch": bucketed,
    "simforge_no_bucketing_seconds_per_epoch": padded,
    "pytorch_seconds_per_epoch": torch_s,
    "speedup_vs_pytorch": torch_s / bucketed,
    "speedup_vs_pytorch_no_bucketing": torch_s / padded,
    "pytorch": json.loads(sys.argv[4]),
}, indent=2))
PY
