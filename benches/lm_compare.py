"""simforge's causal-LM throughput beside PyTorch + transformers on the same config, batch,
length and precision, in one run: `simforge bench lm` (random weights), then
`benches/lm_torch.py` for every config and mode it measured. Writes one JSON object with both
and the ratio (`speed_vs_pytorch` > 1: simforge is faster).

Run (release build, idle machine):
  python3 benches/lm_compare.py --out bench-lm.json [--python PYTHON_WITH_TORCH] [simforge bench lm flags...]
  python3 benches/lm_compare.py --out bench-lm.json --configs tiny --modes train --reps 3
Environment: SIMFORGE (default target/release/simforge).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
parser = argparse.ArgumentParser()
parser.add_argument("--out", default="bench-lm.json")
parser.add_argument("--python", default=sys.executable, help="a Python with torch and transformers")
parser.add_argument("--device", default="cpu")
args, bench_flags = parser.parse_known_args()
simforge = os.environ.get("SIMFORGE", str(root / "target/release/simforge"))

with tempfile.TemporaryDirectory() as scratch:
    ours = Path(scratch) / "simforge.json"
    subprocess.run([simforge, "bench", "lm", "--device", args.device, "--out", str(ours), *bench_flags], check=True, stdout=subprocess.DEVNULL)
    report = json.loads(ours.read_text())
    for result in report["results"]:
        config = Path(scratch) / f"{result['config']}.json"
        config.write_text(json.dumps(result.pop("model_config")))
        run = subprocess.run(
            [args.python, str(root / "benches/lm_torch.py"), str(config), str(result["batch"]), str(result["seq_len"]), str(result["reps"]), result["mode"], args.device],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            print(f"PyTorch baseline failed for {result['config']} {result['mode']}: {run.stderr}", file=sys.stderr)
            result["pytorch"], result["speed_vs_pytorch"] = None, None
            continue
        torch = json.loads(run.stdout)
        result["pytorch"] = torch
        result["speed_vs_pytorch"] = torch["seconds"] / result["simforge"]["seconds"]
report["device"] = args.device
Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
