#!/usr/bin/env bash
# Model-call throughput of distillation with a local (simforge) model: scenes per second when
# the model answers directly (one forward pass per scene) and when it writes SAMPLES decisions
# per scene and is scored after each (generation with the KV cache, then one forward pass per
# decision); and the same decisions through `simforge serve` and the `openai` teacher (HTTP,
# one request per decision, 8 in flight). Prints one JSON object.
#
#   benches/distill_speed.sh RUN_DIR [SCENES] [SAMPLES] [MAX_NEW_TOKENS]
#
# RUN_DIR: a finished quickstart run (checkpoints/quickstart): its scenes and sft/model.
# Defaults: 96 scenes, 4 decisions, 32 tokens. SIMFORGE=path/to/simforge, DEVICE=cpu|wgpu.
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1
scenes=${2:-96}
samples=${3:-4}
tokens=${4:-32}
bin=${SIMFORGE:-target/release/simforge}
device=${DEVICE:-cpu}
time_it() {
    local start end simulator=$1
    shift
    start=$(date +%s.%N)
    "$bin" eval alignment --scenes "$run/scenes/scenes.parquet" --split train --simulator "$simulator" \
        --max-scenes "$scenes" --device "$device" "$@" > /dev/null 2>&1
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
direct=$(time_it "$run/sft/model" --mode direct)
reasoning=$(time_it "$run/sft/model" --mode reasoning --samples "$samples" --max-new-tokens "$tokens")
served=$(mktemp)
"$bin" serve --model "$run/sft/model" --served-model-name student --port 0 --device "$device" > "$served" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$served"' EXIT
until grep -q "^serving" "$served"; do sleep 0.2; done
url=$(sed -n 's/^serving student at //p' "$served")
http=$(time_it "openai:student@$url" --mode reasoning --samples "$samples" --max-new-tokens "$tokens")
cat <<JSON
{"scenes": $scenes, "samples": $samples, "max_new_tokens": $tokens, "device": "$device",
 "direct_seconds": $direct, "direct_scenes_per_s": $(awk -v n="$scenes" -v t="$direct" 'BEGIN { printf "%.2f", n / t }'),
 "reasoning_seconds": $reasoning, "reasoning_scenes_per_s": $(awk -v n="$scenes" -v t="$reasoning" 'BEGIN { printf "%.3f", n / t }'),
 "served_reasoning_seconds": $http, "served_reasoning_scenes_per_s": $(awk -v n="$scenes" -v t="$http" 'BEGIN { printf "%.3f", n / t }')}
JSON
