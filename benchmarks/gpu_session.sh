#!/usr/bin/env bash
# Every GPU figure of issue #12 in one sitting on one GPU (H100/H200: about 20 minutes):
# speed, memory and MFU of five models in eager modes, the flex_attention check, one
# end-to-end epoch, bf16 against fp32, then torch.compile with and without CUDA graphs, then
# the README's time-to-result table. JSON goes to $OUT (the device tool's folder) or
# benchmarks/results/. Needs a python3 with torch, timm, pandas, scikit-learn, scipy, pillow
# and tqdm; nothing is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1
python3 benchmarks/gpu_speed.py eager --out "$out" "$@"
python3 benchmarks/gpu_speed.py compiled --out "$out"
python3 benchmarks/gpu_speed.py table "$out"/gpu_speed_*.json | tee "$out/time_to_result.md"
