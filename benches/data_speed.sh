#!/usr/bin/env bash
# Data-prep at MovieLens-1M size: `simforge bench data` (synthetic ratings written as ML-1M
# `.dat` files, then `prep` and `scenes`, each timed with its peak memory) and the pandas
# baseline a user would otherwise write (`benches/prep_pandas.py`) on the same files, in one
# run. Prints one JSON object with both and simforge's speed-up.
#
#   benches/data_speed.sh [OUT_JSON] [PYTHON]        (needs pandas and pyarrow for the baseline)
# SIMFORGE=path/to/simforge (default target/release/simforge).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-data.json}
python=${2:-python3}
bin=${SIMFORGE:-target/release/simforge}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" bench data --workdir "$work" --out "$work/simforge.json" > /dev/null
"$python" - "$work" "$out" <<'PY'
import json, subprocess, sys, time
work, out = sys.argv[1], sys.argv[2]
start = time.perf_counter()
subprocess.run([sys.executable, "benches/prep_pandas.py", f"{work}/ml-1m-synthetic", f"{work}/pandas"], check=True, stdout=subprocess.DEVNULL)
pandas = time.perf_counter() - start
report = json.load(open(f"{work}/simforge.json"))
report["prep"]["baseline"] = {"tool": "pandas read_csv(sep='::') + pyarrow", "seconds": pandas, "speedup_of_simforge": pandas / report["prep"]["seconds"]}
report.pop("raw", None)
open(out, "w").write(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
PY
