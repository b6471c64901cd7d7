#!/usr/bin/env bash
# What runs on the GPU test host (no CAF/ZeroMQ/spdlog there, no network): unpacks the bundle made by
# scripts/bundle.sh, runs every GPU test with WORKER_ORCD_REQUIRE_GPU=1 (a missing GPU fails), a reduced
# compute-sanitizer memcheck pass, then — when worker-orcd and the tokenizer are present — generates the
# synthetic qwen2.5-7b models under /tmp and benchmarks them. Logs go to $OUT (at most 8 files).
#
# usage: scripts/gpu-host-run.sh BUNDLE(.tar.xz or dir) OUT_DIR [--tokenizer-tar FILE.tar.xz] [--skip-tests]
#        [--skip-sanitizer] [--skip-bench] [--tests REGEX] [--bench-models "q4_k_m q8_0 f16"] [--full-test]
#        [--profile] [--bench-variants "default staged,s6 legacy,fuse-norope off-rmsnorm ..."] [--bench-batch 1,4,16]
#        [--gen-tokens N] [--ncu-detail] [--profile-model q4_k_m|q8_0|f16 (--ncu-detail: a list)]
#        [--ncu-variant TOKENS (matvec tuning tokens for --ncu-detail)] [--bench-timeout SECONDS (300)]
# --bench-variants benchmarks each model once per variant (comma-separated tokens): matvec tuning tokens
# (gpu/matvec.cuh set_matvec_variant, passed as bench --matvec-variant), "default" for none, and
# fuse-norope (RoPE in a launch of its own) / fuse-merge / fuse-pdl / fuse-nopdl (PDL for the small
# decode kernels on / off; on by default) / fuse-noattnpdl (the attention's alone off) for the decode
# launch fusions, fuse-split64 for 64-key decode attention splits, fuse-novbranch (V after Q + K, not
# beside them), fuse-noownrow (the block holding the new position loads its rows after storing it),
# fuse-noresfinal (wo and down read their residual in the epilogue, not before the PDL wait) and
# fuse-latetrig / fuse-earlytrig
# (the small kernels trigger their programmatic dependents after their own wait at every batch size /
# before it at every batch size; default: before it at batch 1 only) (WORKER_ORCD_DECODE_FUSE,
# adapters/cuda_engine_passes.cpp), and off-PAT (PAT a piece of a kernel's mangled name, PAT@G also
# matching grid.x == G) to time the decode graph with those kernel nodes disabled
# (WORKER_ORCD_GRAPH_DISABLE: what they cost on the critical path; the tokens are garbage; nodes of
# cluster launches cannot be disabled), and carve-P (WORKER_ORCD_SMEM_CARVEOUT=P: every kernel launched
# through gpu/launch.cuh prefers P % of L1 as shared memory; carve-P:pat+pat only kernels whose mangled
# name holds one of the patterns); a table of decode tokens/s per variant
# ends the summary.
# --base-binary FILE (a worker-orcd built from other code, optionally .xz): bench variants written
# base:VARIANT run with it instead of the bundle's, so two builds alternate in one run on one card
# (e.g. --bench-variants "default base:default default base:default").
# --bench-timeout stops one bench invocation (one model, one variant) after that many seconds and goes
# on with the next, so that a variant that hangs (a probe that deadlocks: H200 run S18-8) does not
# take the rest of the run with it.
# --trace-binary FILE (a worker-orcd configured with -DWORKER_ORCD_BLOCK_TRACE=ON, optionally .xz): after
# the bench, each benchmarked model once more at batch 1 with --block-trace, summarised by
# scripts/block-trace-summary.py (the per-launch layout of a decode layer) into the summary;
# --trace-variants "default late fuse-mergemidtrig ..." traces under each of those token sets (matvec
# tuning tokens and fuse-TOKEN as for --bench-variants).
# --full-test runs gpu_engine_full_test (CPU vs CUDA engine on the generated 7B files) after the bench;
# --profile times every kernel of one decode step of the Q4_K_M model (--profile-model: another of the
# benchmarked files) with ncu (one replay per kernel). Slow: on the H200 in session 12 (run S12-9) its
# first pass wrote no record within a 380 s call — give it a call of its own with time to spare.
# --ncu-detail: ncu's throughput, occupancy, warp-state and memory sections for the matvec launches of one
# decode layer (each model of --profile-model, batch 1) with L1/L2/DRAM sector counts, in ncu-detail-MODEL.txt;
# quick (about 15 s a model on the H200, S13-6), and the summary keeps each launch's top stall reason.
# The tokenizer tarball holds the Qwen tokenizer.json + tokenizer_config.json (git-ignored npm files).
set -uo pipefail

bundle=$1
out=$2
shift 2
tok_xz=""
skip_tests=0
skip_san=0
skip_bench=0
test_re='.'
models="q4_k_m q8_0 f16"
full_test=0
base_bin=""
trace_bin=""
trace_variants=default
profile=0
ncu_detail=0
variants=default
bench_batch=1,4,16
gen_tokens=128
bench_timeout=300
profile_model=q4_k_m
ncu_variant=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --tokenizer-tar) tok_xz=$2; shift 2 ;;
    --skip-tests) skip_tests=1; shift ;;
    --skip-sanitizer) skip_san=1; shift ;;
    --bench-timeout) bench_timeout=$2; shift 2 ;;
    --skip-bench) skip_bench=1; shift ;;
    --tests) test_re=$2; shift 2 ;;
    --bench-models) models=$2; shift 2 ;;
    --full-test) full_test=1; shift ;;
    --base-binary) base_bin=$2; shift 2 ;;
    --trace-binary) trace_bin=$2; shift 2 ;;
    --trace-variants) trace_variants=$2; shift 2 ;;
    --profile) profile=1; shift ;;
    --ncu-detail) ncu_detail=1; shift ;;
    --bench-variants) variants=$2; shift 2 ;;
    --bench-batch) bench_batch=$2; shift 2 ;;
    --gen-tokens) gen_tokens=$2; shift 2 ;;
    --profile-model) profile_model=$2; shift 2 ;;
    --ncu-variant) ncu_variant=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$out"
if [[ -f $bundle ]]; then
  dir=/tmp/worker-bundle
  rm -rf "$dir" && mkdir -p "$dir" && tar -C "$dir" -xJf "$bundle"
  bundle=$dir
fi
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export WORKER_ORCD_REQUIRE_GPU=1
tokdir=/tmp/worker-tok
if [[ -n $tok_xz ]]; then
  mkdir -p "$tokdir" && tar -C "$tokdir" -xJf "$tok_xz"
  export WORKER_ORCD_QWEN_TOKENIZER=$tokdir/tokenizer.json
fi
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
# Another worker-orcd build to DEST: SRC as is, or decompressed when it ends in .xz.
unpack_exe() {
  if [[ $1 == *.xz ]]; then xz -dc "$1" >"$2"; else cp "$1" "$2"; fi
  chmod +x "$2"
}

say "== host: $(date -u +%FT%TZ) $(hostname)"
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,driver_version --format=csv | tee -a "$summary"
nvidia-smi --query-compute-apps=pid,name,used_memory --format=csv | tee -a "$summary"

status=0
if [[ $skip_tests -eq 0 ]]; then
  say "== GPU tests"
  for t in "$bundle"/bin/gpu_*_test; do
    name=$(basename "$t")
    [[ $name =~ $test_re ]] || continue
    [[ $name == gpu_engine_full_test ]] && continue  # needs the 7B files: runs after the bench
    start=$(date +%s)
    timeout 420 "$t" >>"$out/tests.log" 2>&1
    rc=$?
    say "$(printf '%-28s rc=%d %4ds' "$name" "$rc" "$(( $(date +%s) - start ))")"
    [[ $rc -ne 0 ]] && status=1
  done
fi

if [[ $skip_bench -eq 0 && -x $bundle/bin/worker-orcd && -n $tok_xz ]]; then
  say "== synthetic models + bench"
  base_exe=""
  if [[ -n $base_bin ]]; then
    base_exe=/tmp/worker-orcd-base
    unpack_exe "$base_bin" "$base_exe"
  fi
  for m in $models; do
    f=/tmp/qwen2.5-7b-$m.gguf
    if [[ ! -f $f ]]; then
      start=$(date +%s)
      "$bundle/bin/worker-orcd" synth --preset qwen2.5-7b --weights "$m" --tokenizer "$tokdir/tokenizer.json" \
        --seed 1 --out "$f" >>"$out/bench.log" 2>&1 || { say "synth $m failed"; status=1; continue; }
      say "synth $m: $(( $(date +%s) - start ))s, $(du -h "$f" | cut -f1)"
    fi
    for v in $variants; do
      bin="$bundle/bin/worker-orcd"
      if [[ $v == base:* ]]; then
        [[ -n $base_exe ]] || { say "variant $v: no --base-binary"; status=1; continue; }
        bin=$base_exe
      fi
      # fuse-TOKEN goes to WORKER_ORCD_DECODE_FUSE, off-PAT to WORKER_ORCD_GRAPH_DISABLE (timing
      # without those kernels: garbage tokens), the rest to --matvec-variant.
      spec=$(echo "${v#base:}" | tr ',' '\n' | grep -v -e '^fuse-' -e '^off-' -e '^carve-' -e '^default$' | paste -sd, -)
      carve=$(echo "${v#base:}" | tr ',' '\n' | grep '^carve-' | sed 's/^carve-//' | tail -1)
      fuse=$(echo "${v#base:}" | tr ',' '\n' | grep '^fuse-' | sed 's/^fuse-//' | paste -sd, -)
      off=$(echo "${v#base:}" | tr ',' '\n' | grep '^off-' | sed 's/^off-//' | paste -sd, -)
      echo "== $m variant $v" >>"$out/bench.log"
      WORKER_ORCD_GRAPH_DISABLE=$off WORKER_ORCD_DECODE_FUSE=$fuse WORKER_ORCD_SMEM_CARVEOUT=$carve \
        timeout "$bench_timeout" "$bin" bench --model "$f" --device cuda:0 --prompt-tokens 512 \
        --gen-tokens "$gen_tokens" --batch "$bench_batch" --matvec-variant "$spec" --json 2>>"$out/bench.log" \
        | sed "s/^{/{\"variant\":\"$v\",/" >>"$out/bench.json"
      rc=${PIPESTATUS[0]}
      if [[ $rc -eq 124 ]]; then
        say "bench $m $v: stopped after ${bench_timeout}s"
        status=1
      elif [[ $rc -ne 0 ]]; then
        say "bench $m $v failed (rc=$rc)"
        status=1
      fi
    done
  done
  if [[ -n $trace_bin ]]; then
    trace_exe=/tmp/worker-orcd-trace
    unpack_exe "$trace_bin" "$trace_exe"
    for m in $models; do
      f=/tmp/qwen2.5-7b-$m.gguf
      [[ -f $f ]] || continue
      for tv in $trace_variants; do
        spec=$(echo "$tv" | tr ',' '\n' | grep -v -e '^fuse-' -e '^default$' | paste -sd, -)
        tfuse=$(echo "$tv" | tr ',' '\n' | grep '^fuse-' | sed 's/^fuse-//' | paste -sd, -)
        csv=$out/trace-$m-${tv//,/_}.csv
        say "== block trace $m, variant $tv (batch 1)"
        WORKER_ORCD_DECODE_FUSE=$tfuse timeout "$bench_timeout" "$trace_exe" bench --model "$f" --device cuda:0 --prompt-tokens 512 \
          --gen-tokens "$gen_tokens" --batch 1 --matvec-variant "$spec" --block-trace "$csv" >/tmp/trace-bench.log 2>&1
        cat /tmp/trace-bench.log >>"$out/bench.log"
        grep -e "^decode b=1 " -e "^block trace" /tmp/trace-bench.log | tee -a "$summary"
        python3 "$(dirname "$0")/block-trace-summary.py" "$csv" 2>&1 | tee -a "$summary"
        rm -f "$csv"  # hundreds of thousands of records a step: too large to bring back
      done
    done
  fi
  python3 - "$out/bench.json" <<'PY' | tee -a "$summary"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
if rows:
    print(f"card {rows[0]['card']}, copy {rows[0]['d2d_copy_gb_per_s']:.0f} GB/s")
for r in rows:
    d = "  ".join(f"b={x['batch']}: {x['tokens_per_s']:7.1f} tok/s {100*x['fraction_of_copy_bandwidth']:4.1f}%" for x in r["decode"])
    print(f"{r['quantization']:8s} {r['variant']:22s} prefill {r['prefill_tokens_per_s']:7.0f}  {d}")
PY
fi
profile_file=/tmp/qwen2.5-7b-$profile_model.gguf
if [[ $profile -eq 1 && ! -f $profile_file ]]; then
  say "profile: no $profile_file (the bench step generates it: run without --skip-bench)"
  status=1
fi
if [[ $profile -eq 1 && -f $profile_file ]] && command -v ncu >/dev/null; then
  # Two passes: caches flushed before every kernel (ncu's default: what a kernel costs from DRAM) and
  # caches left warm (closer to the real step, where a small kernel's inputs are still in L2). ncu
  # serializes kernels (no PDL overlap), so the step it reports is longer than the graph's.
  for cache in all none; do
    say "== ncu: kernels of one decode step ($profile_model, batch 1, no graph, cache control $cache)"
    ncu --clock-control none --cache-control "$cache" --print-units base \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
      "$bundle/bin/worker-orcd" bench --model "$profile_file" --device cuda:0 --prompt-tokens 16 \
      --gen-tokens 3 --batch 1 --no-graphs >"$out/ncu-$cache.csv" 2>>"$out/bench.log"
    python3 - "$out/ncu-$cache.csv" <<'PY' | tee -a "$summary"
import csv, sys, collections, re
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki, ni, mi, vi, gi = (hdr.index(k) for k in ("ID", "Kernel Name", "Metric Name", "Metric Value", "Grid Size"))
def short(n):
    n = n.replace("(anonymous namespace)::", "")
    m = re.search(r"([A-Za-z_0-9]+)(<[^(]*>)?\(", n)
    base = m.group(1) if m else n[:40]
    t = re.search(r"ggml_type\)(\d+), (\d+), (true|false)", n)
    return base + (f"<{t.group(1)},{t.group(2)},{t.group(3)[0]}>" if t else "")
launch = collections.OrderedDict()
for r in rows:
    d = launch.setdefault(r[ki], {"name": short(r[ni]), "grid": r[gi]})
    d[r[mi]] = float(r[vi].replace(",", ""))
ids = list(launch)
last = max(i for i, k in enumerate(ids) if "gather_kernel" in launch[k]["name"])
step = [launch[k] for k in ids[last:]]
tot = collections.defaultdict(lambda: [0, 0.0, 0.0])
for d in step:
    t = tot[d["name"] + " " + d["grid"]]; t[0] += 1; t[1] += d.get("gpu__time_duration.sum", 0); t[2] += d.get("dram__bytes_read.sum", 0)
all_ns = sum(v[1] for v in tot.values()); all_b = sum(v[2] for v in tot.values())
print(f"decode step (ncu, serialized): {len(step)} kernels, {all_ns/1e3:.1f} us, {all_b/1e9:.3f} GB read ({all_b/all_ns:.0f} GB/s)")
for n, (c, ns, b) in sorted(tot.items(), key=lambda x: -x[1][1])[:18]:
    print(f"  {n[:56]:56s} x{c:4d} {ns/1e3:8.1f} us {b/1e6:8.1f} MB {b/max(ns,1):6.0f} GB/s")
PY
  done
fi

if [[ $ncu_detail -eq 1 ]] && command -v ncu >/dev/null; then
  for pm in $profile_model; do
    pf=/tmp/qwen2.5-7b-$pm.gguf
    [[ -f $pf ]] || { say "ncu detail: no $pf (the bench step generates it: run without --skip-bench)"; status=1; continue; }
    say "== ncu detail: the matvec launches of one decode layer ($pm, batch 1)"
    # Prefill of 16 tokens runs GEMMs, not matvecs; the first matvecs are the prefill's last-row output
    # projection and then decode step 1: skip into the middle of step 1 (layer 10 or so). The metrics:
    # sectors L1 asked L2 for against the bytes L2 read from DRAM (a weight sector requested twice —
    # two 16-byte halves from two instructions — shows as L2 sectors > DRAM sectors). The stall metrics:
    # every reason's average cycles per issued instruction (the WarpStateStats rules name only the top one).
    ncu --clock-control none --cache-control none --kernel-name regex:matvec --launch-skip 40 --launch-count 5 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis \
      --section LaunchStats --section SchedulerStats --section InstructionStats \
      --metrics dram__sectors_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sector_op_read_hit_rate.pct,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sector_pipe_lsu_mem_global_op_ld_hit_rate.pct,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,smsp__inst_executed.sum,smsp__cycles_active.avg \
      "$bundle/bin/worker-orcd" bench --model "$pf" --device cuda:0 --prompt-tokens 16 \
      --gen-tokens 2 --batch 1 --no-graphs --matvec-variant "$ncu_variant" >"$out/ncu-detail-$pm.txt" 2>>"$out/bench.log"
    grep -E "matvec_|issue_stalled_(long_scoreboard|short_scoreboard|wait|math_pipe_throttle|mio_throttle|lg_throttle|not_selected|selected|dispatch_stall|no_instruction|barrier|branch_resolving)_|inst_executed.sum|Duration|DRAM Throughput|Memory Throughput|L2 Cache Throughput|Achieved Occupancy|Registers Per|Issued Warp|No Eligible|Active Warps Per|Warp Cycles Per Issued|L1/TEX Hit|dram__sectors|lts__t_sector|l1tex__t_|cycles being stalled|operation\. Find|of the total average of" \
      "$out/ncu-detail-$pm.txt" | cut -c1-150 | tee -a "$summary"
  done
fi

if [[ $full_test -eq 1 && -x $bundle/bin/gpu_engine_full_test ]]; then
  say "== full-size 7B: CUDA vs CPU engine"
  files=""
  for m in $models; do [[ -f /tmp/qwen2.5-7b-$m.gguf ]] && files="$files /tmp/qwen2.5-7b-$m.gguf"; done
  start=$(date +%s)
  WORKER_ORCD_FULL_MODELS="$files" timeout ${FULL_TEST_TIMEOUT:-900} "$bundle/bin/gpu_engine_full_test" >>"$out/tests.log" 2>&1
  rc=$?
  say "$(printf '%-28s rc=%d %4ds' gpu_engine_full_test "$rc" "$(( $(date +%s) - start ))")"
  grep -A2 "warning:" "$out/tests.log" | grep "gguf:" | tee -a "$summary"
  [[ $rc -ne 0 ]] && status=1
fi

if [[ $skip_san -eq 0 ]] && command -v compute-sanitizer >/dev/null; then
  say "== compute-sanitizer memcheck (reduced: WORKER_ORCD_GPU_TEST_REDUCED=1)"
  for t in "$bundle"/bin/gpu_*_test; do
    name=$(basename "$t")
    [[ $name =~ $test_re ]] || continue
    [[ $name == gpu_engine_full_test ]] && continue
    args=()
    # The engine test under memcheck: one case (CUDA graph vs direct launches) keeps it short.
    [[ $name == gpu_engine_test ]] && args=("CUDA graph replay*")
    # Timing bounds do not hold with every launch instrumented.
    [[ $name == gpu_runtime_test ]] && args=("~[timing]")
    WORKER_ORCD_GPU_TEST_REDUCED=1 timeout 240 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 \
      "$t" "${args[@]}" >>"$out/sanitizer.log" 2>&1
    rc=$?
    say "$(printf 'memcheck %-28s rc=%d' "$name" "$rc")"
    [[ $rc -ne 0 ]] && status=1
  done
fi

say "== done, status $status"
exit $status
