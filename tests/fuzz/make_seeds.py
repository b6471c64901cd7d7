#!/usr/bin/env python3
"""Writes a small seed corpus of valid GGUF files (both architectures' key sets, every supported
tensor type, arrays of every element type) for the GGUF fuzzer. Usage: make_seeds.py OUT_DIR"""
import os
import struct
import sys

TYPES = {"f32": (0, 1, 4), "f16": (1, 1, 2), "q4_0": (2, 32, 18), "q5_0": (6, 32, 22), "q8_0": (8, 32, 34),
         "q4_k": (12, 256, 144), "q5_k": (13, 256, 176), "q6_k": (14, 256, 210), "bf16": (30, 1, 2),
         "mxfp4": (39, 32, 17)}


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def u32(key, v):
    return kv(key, 4, struct.pack("<I", v))


def f32(key, v):
    return kv(key, 6, struct.pack("<f", v))


def string(key, v):
    return kv(key, 8, s(v))


def arr(key, etype, fmt, items):
    body = struct.pack("<IQ", etype, len(items))
    for it in items:
        body += s(it) if etype == 8 else struct.pack(fmt, it)
    return kv(key, 9, body)


def gguf(kvs, tensors, alignment=32):
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, data, off = b"", b"", 0
    for name, ne, tname in tensors:
        tid, blk, bsz = TYPES[tname]
        n = 1
        for d in ne:
            n *= d
        nbytes = n // blk * bsz
        infos += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", d) for d in ne)
        infos += struct.pack("<IQ", tid, off)
        chunk = bytes((i * 7 + 3) & 0xFF for i in range(nbytes))
        chunk += b"\0" * ((-len(chunk)) % alignment)
        data += chunk
        off += len(chunk)
    out = head + infos
    out += b"\0" * ((-len(out)) % alignment)
    return out + data


def arch_kvs(arch, extra):
    base = [string("general.architecture", arch), u32(arch + ".context_length", 256),
            u32(arch + ".embedding_length", 256), u32(arch + ".block_count", 2),
            u32(arch + ".attention.head_count", 4), u32(arch + ".attention.head_count_kv", 2),
            f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6)]
    return base + extra


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    seeds["qwen2"] = gguf(arch_kvs("qwen2", [u32("qwen2.feed_forward_length", 512), f32("qwen2.rope.freq_base", 1e6),
                                             string("tokenizer.ggml.model", "gpt2"),
                                             arr("tokenizer.ggml.tokens", 8, None, ["a", "b", "ab", "\u0120x"]),
                                             arr("tokenizer.ggml.token_type", 5, "<i", [1, 1, 1, 3]),
                                             arr("tokenizer.ggml.merges", 8, None, ["a b"])]),
                          [("token_embd.weight", [256, 4], "q4_k"), ("output_norm.weight", [256], "f32")])
    seeds["gpt_oss"] = gguf(arch_kvs("gpt-oss", [u32("gpt-oss.attention.key_length", 64),
                                                 u32("gpt-oss.attention.value_length", 64),
                                                 string("gpt-oss.rope.scaling.type", "yarn"),
                                                 f32("gpt-oss.rope.scaling.factor", 32.0),
                                                 u32("gpt-oss.expert_count", 4), u32("gpt-oss.expert_used_count", 2),
                                                 u32("gpt-oss.expert_feed_forward_length", 256),
                                                 u32("gpt-oss.attention.sliding_window", 128)]),
                            [("token_embd.weight", [256, 2], "q8_0"), ("blk.0.ffn_up_exps.weight", [64, 2, 4], "mxfp4")])
    for name, (tid, blk, bsz) in TYPES.items():
        seeds["type_" + name] = gguf([u32("general.alignment", 64)], [("t", [256, 2], name)], alignment=64)
    seeds["arrays"] = gguf([arr("a.u8", 0, "<B", [1, 2]), arr("a.i8", 1, "<b", [-1]), arr("a.u16", 2, "<H", [7]),
                            arr("a.i16", 3, "<h", [-7]), arr("a.f32", 6, "<f", [1.5]), arr("a.bool", 7, "<B", [1, 0]),
                            arr("a.u64", 10, "<Q", [9]), arr("a.i64", 11, "<q", [-9]), arr("a.f64", 12, "<d", [2.5]),
                            kv("b.f64", 12, struct.pack("<d", 0.25)), kv("b.i64", 11, struct.pack("<q", -3))], [])
    for name, blob in seeds.items():
        with open(os.path.join(out, name + ".gguf"), "wb") as fh:
            fh.write(blob)


if __name__ == "__main__":
    main()
