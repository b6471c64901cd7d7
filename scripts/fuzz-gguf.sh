#!/usr/bin/env bash
# Builds the GGUF reader's libFuzzer target with clang (ASan + UBSan) and runs it for a bounded time over
# a generated seed corpus. Exit status is non-zero on any crash, sanitizer report or leak.
# usage: scripts/fuzz-gguf.sh WORK_DIR [SECONDS]
set -euo pipefail
work=${1:?usage: fuzz-gguf.sh WORK_DIR [SECONDS]}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
clangxx=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$clangxx" ]; then
  echo "fuzz-gguf: clang++ not found (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
mkdir -p "$work/corpus"
start=$(date +%s)
"$clangxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root" "$root/tests/fuzz/fuzz_gguf.cpp" "$root/model/gguf.cpp" "$root/model/ggml_type.cpp" \
  "$root/model/hparams.cpp" "$root/model/quant.cpp" "$root/model/quant_legacy.cpp" \
  "$root/model/quant_k.cpp" -o "$work/fuzz_gguf"
echo "fuzz-gguf: built in $(( $(date +%s) - start )) s"
python3 "$root/tests/fuzz/make_seeds.py" "$work/seeds"
# -max_len: seeds are < 4 KiB; larger inputs add nothing but time. -rss_limit_mb guards the reader's
# allocations (counts are bounded by the file size, so a small input must stay small in memory).
"$work/fuzz_gguf" -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=1024 -timeout=10 \
  -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" "$work/seeds" 2>&1 | tail -n 25
echo "fuzz-gguf: no crash in ${seconds} s"
