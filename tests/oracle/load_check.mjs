// Oracle: does llama.cpp accept a generated GGUF and read from it what we meant to write?
//
//   node tests/oracle/load_check.mjs FILE.gguf EXPECTED.json --weights SCHEME [--vocab-only] [--no-eval]
//
// Loads FILE with llama.cpp (node-llama-cpp prebuilt CPU binaries: gpu:false, build:"never",
// checkTensors so llama.cpp validates every tensor's data) and compares what llama.cpp reports with
// EXPECTED (tests/synth/expected/<preset>.json, written by hand from model-facts.md, not by the
// generator): architecture, tensor count, per-type tensor counts and file type of SCHEME, the
// hyperparameters of its print_info lines, sliding-window layers, vocabulary size, special and
// padding tokens, end-of-generation set. Unless --no-eval, it then runs a short prompt through the model
// and checks that the next-token distributions are finite and peaked (not flat), which is what the
// generator's weight scales promise. --vocab-only loads only the vocabulary and metadata (for files too
// large for a full load); the tensor checks that need the tensors are then skipped and said so.
// Exit 0 when every check passes, 1 otherwise (including a missing node_modules).

import {readFileSync} from "node:fs";
import {getCpuLlama, importNodeLlamaCpp, parseLoadLog, printInfoValue} from "./lib/llama_oracle.mjs";

function usage(message) {
    console.error(`load_check: ${message}\nusage: node load_check.mjs FILE.gguf EXPECTED.json --weights SCHEME [--vocab-only] [--no-eval]`);
    process.exit(2);
}

const args = process.argv.slice(2);
const positional = [];
let weights = null, vocabOnly = false, evaluate = true;
for (let i = 0; i < args.length; i++) {
    if (args[i] === "--weights") weights = args[++i];
    else if (args[i] === "--vocab-only") vocabOnly = true;
    else if (args[i] === "--no-eval") evaluate = false;
    else if (args[i].startsWith("--")) usage(`unknown option ${args[i]}`);
    else positional.push(args[i]);
}
if (positional.length !== 2) usage("need FILE.gguf and EXPECTED.json");
const [ggufPath, expectedPath] = positional;
const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
if (weights === null) usage("--weights SCHEME is required");
const scheme = expected.weights?.[weights];
if (!scheme) usage(`${expectedPath} has no weights scheme '${weights}' (has: ${Object.keys(expected.weights ?? {}).join(", ")})`);

const failures = [];
let checks = 0;
function check(ok, what, got, want) {
    checks++;
    if (!ok) failures.push(`${what}: llama.cpp has ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}
function sameValue(got, want) {
    if (typeof want === "number") {
        const g = typeof got === "number" ? got : printInfoValue(got);
        return typeof g === "number" && Math.abs(g - want) <= 1e-6 * Math.max(1, Math.abs(want));
    }
    return String(got) === String(want);
}

const nlc = await importNodeLlamaCpp();
const {llama, log} = await getCpuLlama(nlc);
const t0 = performance.now();
let model;
try {
    model = await llama.loadModel({modelPath: ggufPath, vocabOnly, checkTensors: !vocabOnly, gpuLayers: 0});
} catch (e) {
    console.error(log.lines.filter(l => /^(warn|error)/.test(l)).join("\n"));
    console.error(`FAIL: llama.cpp rejected ${ggufPath}: ${e?.message ?? e}`);
    process.exit(1);
}
const loadSeconds = (performance.now() - t0) / 1000;
const info = parseLoadLog(log.lines);
const pi = info.printInfo;

// --- What llama.cpp read from the file ---------------------------------------------------------
check(info.tensorCount === expected.n_tensors, "tensor count", info.tensorCount, expected.n_tensors);
check(JSON.stringify(sortKeys(info.tensorTypes)) === JSON.stringify(sortKeys(scheme.tensor_types)), "tensor types",
    info.tensorTypes, scheme.tensor_types);
check(pi["file type"] === scheme.file_type, "file type", pi["file type"], scheme.file_type);
check(pi.arch === expected.architecture, "architecture (print_info arch)", pi.arch, expected.architecture);
check(model.fileInfo.metadata?.general?.architecture === expected.architecture, "general.architecture",
    model.fileInfo.metadata?.general?.architecture, expected.architecture);
for (const [key, want] of Object.entries(expected.print_info)) {
    if (vocabOnly && expected.print_info_needs_tensors?.includes(key)) continue;
    check(key in pi && sameValue(pi[key], want), `print_info ${key}`, pi[key], want);
}
if (!vocabOnly) {
    const n_layer = expected.print_info.n_layer;
    const swa = info.swaLayers.filter(l => l < n_layer);
    check(JSON.stringify(swa) === JSON.stringify(expected.swa_layers), "sliding-window layers", swa, expected.swa_layers);
}
const eog = [].concat(pi["EOG token"] ?? []).map(printInfoValue);
check(JSON.stringify(eog) === JSON.stringify(expected.eog_tokens), "end-of-generation tokens", eog, expected.eog_tokens);

// --- The same facts through llama.cpp's C API (node-llama-cpp getters) -------------------------
let nVocab = 0;
for (const _ of model.iterateAllTokens()) nVocab++;
check(nVocab === expected.print_info.n_vocab, "llama_vocab_n_tokens", nVocab, expected.print_info.n_vocab);
check(model.tokens.bos === expected.bos, "bos token", model.tokens.bos, expected.bos);
check(model.tokens.eos === expected.eos, "eos token", model.tokens.eos, expected.eos);
check(model.trainContextSize === expected.print_info.n_ctx_train, "n_ctx_train", model.trainContextSize, expected.print_info.n_ctx_train);
if (!vocabOnly) {
    check(model.embeddingVectorSize === expected.print_info.n_embd, "n_embd", model.embeddingVectorSize, expected.print_info.n_embd);
}
check(String(model.typeDescription).startsWith(expected.architecture + " "), "llama_model_desc", model.typeDescription,
    `${expected.architecture} ...`);
for (const t of expected.tokens) {
    const attrs = model.getTokenAttributes(t.id);
    const type = ["control", "userDefined", "unused", "normal", "byte", "unknown"].find(a => attrs[a]) ?? "undefined";
    check(type === t.type, `token ${t.id} type`, type, t.type);
    if (t.text !== undefined) {
        const text = model.detokenize([t.id], true);
        check(text === t.text, `token ${t.id} text`, text, t.text);
    }
}

// --- A forward pass: finite, peaked next-token distributions -----------------------------------
const evalReport = [];
if (evaluate && !vocabOnly) {
    const tokens = model.tokenize(expected.eval.text, false);
    const context = await model.createContext({contextSize: expected.eval.context_size, batchSize: expected.eval.context_size});
    const sequence = context.getSequence();
    const positions = expected.eval.positions.map(p => (p < 0 ? tokens.length + p : p));
    const input = tokens.map((tok, i) => (positions.includes(i) ? [tok, {generateNext: {probabilities: true}}] : tok));
    const outputs = await sequence.controlledEvaluate(input);
    for (const p of positions) {
        const probs = outputs[p]?.next?.probabilities;
        if (!probs) {
            check(false, `probabilities at position ${p}`, "none", "a distribution");
            continue;
        }
        let sum = 0, finite = true;
        let top = [[-1, -1], [-1, -1]];  // the two most probable [token, probability]
        for (const [tok, pr] of probs) {
            if (!Number.isFinite(pr)) finite = false;
            sum += pr;
            if (pr > top[0][1]) top = [[tok, pr], top[0]];
            else if (pr > top[1][1]) top[1] = [tok, pr];
        }
        check(finite && Math.abs(sum - 1) < 1e-3, `position ${p}: probabilities finite and summing to 1`, sum, 1);
        check(top[0][0] <= expected.eval.last_real_token_id, `position ${p}: top-1 is a real token, not vocabulary padding`,
            top[0][0], `<= ${expected.eval.last_real_token_id}`);
        check(top[0][1] >= expected.eval.min_top1_probability, `position ${p}: top-1 probability (peaked, not flat)`,
            top[0][1], `>= ${expected.eval.min_top1_probability}`);
        evalReport.push({position: p, top1: top[0][0], p1: +top[0][1].toFixed(4), top2: top[1][0], p2: +top[1][1].toFixed(4),
            log_margin: +Math.log(top[0][1] / Math.max(top[1][1], 1e-30)).toFixed(3)});
    }
    await context.dispose();
}

console.log(JSON.stringify({
    file: ggufPath,
    weights,
    mode: vocabOnly ? "vocab-only" : "full load (mmap, checkTensors)",
    load_seconds: +loadSeconds.toFixed(2),
    llama_cpp: {
        architecture: pi.arch, kv_count: info.kvCount, tensor_count: info.tensorCount, tensor_types: info.tensorTypes,
        file_type: pi["file type"], file_size: pi["file size"], n_vocab: nVocab, bos: model.tokens.bos, eos: model.tokens.eos,
        type_description: model.typeDescription, swa_layers: info.swaLayers,
        print_info: Object.fromEntries(Object.keys(expected.print_info).map(k => [k, pi[k]]))
    },
    eval: evalReport,
    warnings: info.warnings
}, null, 1));
await model.dispose();
await llama.dispose();

if (failures.length > 0) {
    console.error(`FAIL: ${failures.length} of ${checks} checks failed for ${ggufPath}:\n  ` + failures.join("\n  "));
    process.exit(1);
}
console.log(`PASS: ${checks} checks: llama.cpp reads ${ggufPath} as expected`);

function sortKeys(o) {
    return Object.fromEntries(Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b)));
}
