#!/bin/bash
# The ONE command to run on the GPU device machine (see docs/performance.md, "H200 figures").
# Needs, carried beside the checkout: .whl/ (benchmarks/fetch_device_wheels.sh) and .gpu-kit/ (a copy of
# ../shared/gpu-kit). Installs the wheels, runs the suite (the authors' code beside it) and the CUDA
# fast-path tests, and writes everything to $OUT: log, suite.md, suite.md.json, ref_logs.tgz (and
# kedro_smoke.log when .whl/pipelines/ holds the Kedro stack: fetch_device_wheels.sh --pipelines).
# usage: [NO_PIPELINES=1] bash benchmarks/device_run.sh [extra gpu_suite.py arguments, e.g. --budget 270]
# Time: wheel install ~20 s, suite <= 270 s (+ <= 120 s kedro smoke run), CUDA tests <= 120 s: under 9 min.
set -u
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed" | tee "$OUT/log"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src
PIPE=()
if [ -z "${NO_PIPELINES:-}" ] && ls .whl/pipelines/*.whl >/dev/null 2>&1; then  # the Kedro stack, kept apart from the suite's own imports
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-pipe \
    .whl/pipelines/*.whl && PIPE=(--pipelines --pipelines-path /tmp/site-pipe)
fi
set -o pipefail
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv || true
  python3 -c "import torch, kornia, pydantic; print('torch', torch.__version__, 'kornia', kornia.__version__, 'pydantic', pydantic.__version__, 'cuda', torch.cuda.is_available())"
  timeout 420 python3 benchmarks/gpu_suite.py --reference .gpu-kit --ref-work /tmp/gpu-kit-work --out "$OUT/suite.md" \
    --budget 270 "${PIPE[@]}" "$@"
  echo "suite rc $?"
  timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/engine/test_cuda_fastpaths.py
  echo "cuda tests rc $?"
  tar -czf "$OUT/ref_logs.tgz" -C /tmp/gpu-kit-work logs 2>/dev/null || true
  date -u
} 2>&1 | tee "$OUT/log"
