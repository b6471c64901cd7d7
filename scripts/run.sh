#!/usr/bin/env bash
# The main job, for a newcomer on a fresh Debian machine: installs what is needed (scripts/setup.sh),
# then scripts/demo.sh builds worker-orcd, generates a tiny synthetic Qwen2 model with the real Qwen2.5
# tokenizer when no model file is given (no weights can be downloaded here), starts the worker (on the GPU
# when there is one and the model is qwen2, else on the CPU engine), streams a chat
# completion through the example Python client and stops the worker cleanly.
# usage: scripts/run.sh [MODEL.gguf]      (DEVICE=cpu|cuda:N to choose the engine)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
if [ $# -gt 0 ]; then export MODEL="$1"; fi
exec "$root/scripts/demo.sh"
