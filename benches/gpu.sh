#!/usr/bin/env bash
# One-shot GPU measurement, for the day a GPU machine is lent (it has PyTorch, transformers and
# CUDA, but no Rust and no network): carry a simforge binary built here with the GPU feature,
# run this once, and read one JSON file. Every part is bounded so that the whole fits in a few
# minutes; a part that fails is recorded as failed and the others still run.
#
#   benches/gpu.sh SIMFORGE_BINARY [OUT_DIR]
#
# DEVICE: simforge's device (default cuda; wgpu for a `--features wgpu` build). PyTorch runs on
# CUDA when it sees a GPU, else on the CPU. PYTHON: a Python with torch and transformers
# (default python3). PARTS: which parts to run (default "lm-tiny lm-0.6b quickstart"). Each part's stdout and stderr: OUT_DIR/PART.out and .log. Parts and outputs in OUT_DIR (default $OUT, else ./gpu-bench):
#   lm-tiny.json   scoring and a training step, tiny Qwen3, 8 × 512, against PyTorch
#   lm-0.6b.json   the same for the Qwen3-0.6B shape, 1 × 512
#   quickstart/    `simforge run recipes/quickstart.toml` on the device (quickstart.out: its
#                  stages and seconds)
#   gpu-bench.json everything above in one object, with the machine and the GPU's name
#
# Build the binary here (stripped and compressed, to travel):
#   cargo build --release -p simforge --features cuda   # or wgpu; cuda downloads an LLVM bundle
#   strip -o /tmp/simforge-gpu target/release/simforge && zstd -19 /tmp/simforge-gpu
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: benches/gpu.sh SIMFORGE_BINARY [OUT_DIR]}
out=${2:-${OUT:-gpu-bench}}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}
mkdir -p "$out"
export SIMFORGE="$bin" # lm_compare.py runs this binary
status=()

part() { # name, timeout in seconds, command...: runs it, records ok / failed (exit code) / timed out
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.out" 2> "$out/$name.log"
  local code=$?
  local verdict=ok
  [ "$code" -eq 124 ] && verdict="timed out after ${limit}s"
  [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && verdict="failed (exit $code)"
  status+=("\"$name\": {\"result\": \"$verdict\", \"seconds\": $((SECONDS - start))}")
  echo "$name: $verdict in $((SECONDS - start)) s" >&2
}

parts=${PARTS:-lm-tiny lm-0.6b quickstart}
want() { [[ " $parts " == *" $1 "* ]]; }
want lm-tiny && part lm-tiny 240 "$python" benches/lm_compare.py --python "$python" --device "$device" --out "$out/lm-tiny.json" --configs tiny --reps 5
want lm-0.6b && part lm-0.6b 300 "$python" benches/lm_compare.py --python "$python" --device "$device" --out "$out/lm-0.6b.json" --configs qwen3-0.6b --reps 3
want quickstart && part quickstart 600 "$bin" run recipes/quickstart.toml --out "$out/quickstart" --set "run.device=\"$device\""

gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)
"$python" - "$out" "$device" "$gpu" "{$(IFS=,; echo "${status[*]}")}" <<'PY'
import json, pathlib, platform, sys, time
out, device, gpu, status = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
def read(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None
report = {
    "benchmark": "gpu",
    "date": time.strftime("%Y-%m-%d"),
    "device": device,
    "gpu": gpu or None,
    "machine": {"cpus": __import__("os").cpu_count(), "os": platform.system().lower()},
    "parts": status,
    "lm_tiny": read("lm-tiny.json"),
    "lm_qwen3_0_6b": read("lm-0.6b.json"),
    "quickstart_stages": read("quickstart.out"),
}
(out / "gpu-bench.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({k: report[k] for k in ("device", "gpu", "parts")}, indent=2))
PY
