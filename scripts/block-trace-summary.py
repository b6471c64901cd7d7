#!/usr/bin/env python3
"""Summarises a block-timeline CSV written by `worker-orcd bench --block-trace FILE` (a build configured
with -DWORKER_ORCD_BLOCK_TRACE=ON; gpu/block_trace.hpp): two decode steps, one record per block of the
RMSNorm, attention split / merge, int8 quantization and fan-out matvec kernels (start, wait returned,
thread 0 done; global timer, ns).

Prints, for the second step: its span and the gap before it (the end of the first step's last traced
block to this step's first block: sampling, the token copy, the host's turn-around, the next graph
launch and the embedding gather); then, per position of a launch in a layer (RMSNorm, Q/K/V, split,
merge, wo, ...), averaged over the middle layers:
  launch  — from the previous launch's last block end to this launch's first block start
            (negative: it started early, as a programmatic dependent),
  wait    — from the previous launch's last block end to this launch's first block past its wait
            (what the grid boundary itself costs on the critical path),
  work    — from this launch's first wait return to its last block end,
  share   — from the previous launch's last end to this launch's last end (its part of the layer),
and one middle layer in full.

usage: block-trace-summary.py TRACE.csv
"""
import csv
import sys
from collections import defaultdict


def main(path):
    by_node = defaultdict(list)
    for r in csv.DictReader(open(path)):
        by_node[(r["kernel"], int(r["grid"]))].append(r)
    # A graph replays a node with the same %gridid every step: split each node's blocks where their
    # starts are more than 300 µs apart (a step takes milliseconds, one launch tens of microseconds).
    launches = []
    for (kernel, grid), recs in by_node.items():
        recs.sort(key=lambda r: int(r["start_ns"]))
        cur = [recs[0]]
        for r in recs[1:]:
            if int(r["start_ns"]) - int(cur[-1]["start_ns"]) > 300000:
                launches.append((kernel, cur))
                cur = []
            cur.append(r)
        launches.append((kernel, cur))
    rows = []
    for kernel, recs in launches:
        starts = [int(r["start_ns"]) for r in recs]
        waits = [int(r["start_ns"]) + int(r["wait_ns"]) for r in recs if int(r["wait_ns"]) > 0]
        ends = [int(r["start_ns"]) + int(r["end_ns"]) for r in recs]
        rows.append({
            "kernel": kernel, "blocks": len(recs), "first_start": min(starts), "last_start": max(starts),
            "first_wait": min(waits) if waits else min(starts), "last_wait": max(waits) if waits else max(starts),
            "last_end": max(ends), "first_end": min(ends),
        })
    rows.sort(key=lambda x: x["first_start"])
    if not rows:
        print("block trace: no records")
        return
    # Steps: a new step starts at the first launch that begins after a gap of > 20 µs with nothing running.
    steps, cur, running_end = [], [rows[0]], rows[0]["last_end"]
    for x in rows[1:]:
        if x["first_start"] > running_end + 20000:
            steps.append(cur)
            cur = []
        cur.append(x)
        running_end = max(running_end, x["last_end"])
    steps.append(cur)
    print(f"block trace {path}: {len(rows)} launches in {len(steps)} step(s)")
    if len(steps) < 2:
        print("  fewer than two steps found: showing the first")
    step = steps[1] if len(steps) > 1 else steps[0]
    if len(steps) > 1:
        prev_end = max(x["last_end"] for x in steps[0])
        print(f"  gap before the step (the end of the previous step's last traced block to this step's first block): "
              f"{(step[0]['first_start'] - prev_end) / 1000:.1f} µs")
        # With the gather and argmax traced: output projection → argmax → (select, token copy, host, graph
        # launch, input copy) → gather → first RMSNorm.
        prev = steps[0]
        am = [x for x in prev if x["kernel"] == "argmax"]
        ga = [x for x in step if x["kernel"] == "gather"]
        if am and ga:
            before = [x for x in prev if x["kernel"] == "matvec_fanout"][-1]
            first_norm = next(x for x in step if x["kernel"] == "rmsnorm")
            print(f"    output projection's last block end → argmax last end: {(am[-1]['last_end'] - before['last_end']) / 1000:.1f} µs")
            print(f"    argmax end → gather first start (select, token copy, host, launch, input copy): "
                  f"{(ga[0]['first_start'] - am[-1]['last_end']) / 1000:.1f} µs")
            print(f"    gather first start → first RMSNorm wait return: {(first_norm['first_wait'] - ga[0]['first_start']) / 1000:.1f} µs")
    span = max(x["last_end"] for x in step) - step[0]["first_start"]
    print(f"  step: {len(step)} traced launches, {span / 1000:.1f} µs from its first block start to its last block end")

    # Layers: each begins with an RMSNorm that is followed by a launch (the output norm ends the step).
    step = [x for x in step if x["kernel"] not in ("gather", "argmax")]
    norm_idx = [i for i, x in enumerate(step) if x["kernel"] == "rmsnorm"]
    layer_starts = norm_idx[::2]
    layers = []
    for k, s in enumerate(layer_starts):
        e = layer_starts[k + 1] if k + 1 < len(layer_starts) else len(step)
        layers.append((s, e))
    if len(layers) < 3:
        print("  too few layers to summarise")
        return
    # Middle layers with the same shape as the first (skip the last: the output norm and projection follow).
    shape = [step[i]["kernel"] for i in range(*layers[0])]
    middle = [l for l in layers[1:-1] if [step[i]["kernel"] for i in range(*l)] == shape]
    print(f"  {len(layers)} layers; averaged over {len(middle)} middle layers of {len(shape)} launches "
          f"(µs; launch/wait from the previous launch's last block end):")
    print(f"  {'#':>2} {'kernel':14s} {'blocks':>6s} {'launch':>7s} {'wait':>7s} {'work':>7s} {'share':>7s}")
    tot = 0.0
    for p in range(len(shape)):
        acc = defaultdict(float)
        for (s, e) in middle:
            x = step[s + p]
            prev = step[s + p - 1]
            acc["launch"] += x["first_start"] - prev["last_end"]
            acc["wait"] += x["first_wait"] - prev["last_end"]
            acc["work"] += x["last_end"] - x["first_wait"]
            acc["share"] += x["last_end"] - prev["last_end"]
        n = len(middle)
        blocks = step[middle[0][0] + p]["blocks"]
        tot += acc["share"] / n
        print(f"  {p:2d} {shape[p]:14s} {blocks:6d} {acc['launch'] / n / 1000:7.2f} {acc['wait'] / n / 1000:7.2f} "
              f"{acc['work'] / n / 1000:7.2f} {acc['share'] / n / 1000:7.2f}")
    print(f"  layer total {tot / 1000:.2f} µs")
    s, e = middle[len(middle) // 2]
    t0 = step[s - 1]["last_end"]
    print(f"  one middle layer in full (µs from the previous launch's last block end):")
    print(f"  {'kernel':14s} {'blocks':>6s} {'start':>13s} {'wait ret':>13s} {'end':>13s}")
    for i in range(s, e):
        x = step[i]
        f = lambda a, b: f"{(a - t0) / 1000:6.2f}…{(b - t0) / 1000:6.2f}"
        print(f"  {x['kernel']:14s} {x['blocks']:6d} {f(x['first_start'], x['last_start'])} "
              f"{f(x['first_wait'], x['last_wait'])} {f(x['first_end'], x['last_end'])}")


if __name__ == "__main__":
    main(sys.argv[1])
