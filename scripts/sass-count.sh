#!/usr/bin/env bash
# SASS opcode counts of chosen kernels, for the GPU test host (the development machine has nvcc but no
# cuobjdump). For each PATTERN (a regular expression over mangled kernel names), the first matching
# kernel's instruction count and its most frequent opcodes go to OUT/sass-summary.txt, its SASS to
# OUT/sass-N.txt.
#
# usage: scripts/sass-count.sh BINARY OUT PATTERN...
#   e.g. scripts/sass-count.sh dist/gpu/bin/gpu_matvec_test out 'fanout_kernel.*E12ELb1ELi4ELi1E' 'q4k_mma_kernelILb1E'
set -euo pipefail
bin=$1
out=$2
shift 2
mkdir -p "$out"
command -v cuobjdump >/dev/null || { echo "sass-count.sh: no cuobjdump on this machine" >&2; exit 1; }
cuobjdump -sass "$bin" >"$out/.all.sass"
python3 - "$out/.all.sass" "$out" "$@" <<'PY'
import collections, re, sys
lines = open(sys.argv[1]).read().split("\n")
out, patterns = sys.argv[2], sys.argv[3:]
funcs = collections.OrderedDict()
cur = None
for line in lines:
    m = re.match(r"\s*Function : (\S+)", line)
    if m:
        cur = m.group(1)
        funcs[cur] = []
        continue
    m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)", line)
    if cur and m:
        funcs[cur].append((m.group(2), line))
with open(out + "/sass-summary.txt", "w") as f:
    for n, pat in enumerate(patterns):
        hit = next((name for name in funcs if re.search(pat, name)), None)
        if hit is None:
            f.write(f"== {pat}: no kernel matches\n")
            continue
        ins = funcs[hit]
        ops = collections.Counter(op.split(".")[0] for op, _ in ins)
        f.write(f"== {pat}: {len(ins)} instructions ({hit[:120]})\n   ")
        f.write(" ".join(f"{k}:{v}" for k, v in ops.most_common(40)) + "\n")
        with open(f"{out}/sass-{n}.txt", "w") as g:
            g.write("\n".join(line for _, line in ins) + "\n")
PY
rm -f "$out/.all.sass"
cat "$out/sass-summary.txt"
