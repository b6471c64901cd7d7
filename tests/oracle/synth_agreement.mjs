// Oracle: do the quantized variants of one synthetic model mean the same model to llama.cpp?
//
//   node tests/oracle/synth_agreement.mjs EXPECTED.json REF.gguf:SCHEME OTHER.gguf:SCHEME ...
//
// The generator draws the same floats for a preset and seed under every --weights scheme (values are
// keyed by tensor name), so the f32 file and, say, the Q4_K_M file differ only by quantization noise.
// llama.cpp dequantizes with its own code, so if our quantizers wrote any block layout differently from
// ggml's (nibble order, scale packing, sign conventions), llama.cpp would see a different random model
// and its next-token distributions would no longer track the reference's. For each position of a fixed
// prompt this compares each file's log-probabilities with REF's over REF's 32 most likely tokens
// (Pearson correlation) and how often the top-1 token agrees, against per-scheme bounds in
// EXPECTED.json ("agreement"). Exit 0 when every file is within its bounds.

import {readFileSync} from "node:fs";
import {getCpuLlama, importNodeLlamaCpp} from "./lib/llama_oracle.mjs";

const [expectedPath, ...files] = process.argv.slice(2);
if (!expectedPath || files.length < 2) {
    console.error("usage: node synth_agreement.mjs EXPECTED.json REF.gguf:SCHEME OTHER.gguf:SCHEME ...");
    process.exit(2);
}
const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
const nlc = await importNodeLlamaCpp();
const {llama} = await getCpuLlama(nlc);
const topK = 32;

// Next-token distributions (as Map token -> probability) at every position of the prompt.
async function distributions(path) {
    const model = await llama.loadModel({modelPath: path, gpuLayers: 0});
    const tokens = model.tokenize(expected.eval.text, false);
    const context = await model.createContext({contextSize: expected.eval.context_size, batchSize: expected.eval.context_size});
    // Every third position: enough positions to average over, and each vocabulary-sized map costs time.
    const input = tokens.map((tok, i) => (i % 3 === 0 ? [tok, {generateNext: {probabilities: true}}] : tok));
    const outputs = await context.getSequence().controlledEvaluate(input);
    // Keep only what the comparison needs: the full maps are vocabulary-sized.
    const result = outputs.filter((o, i) => i % 3 === 0).map(o => {
        const probs = o.next.probabilities;
        const top = topEntries(probs, topK);
        return {top, probs: new Map(top.map(([t]) => [t, probs.get(t)])), all: probs};
    });
    await context.dispose();
    await model.dispose();
    return {tokens, result};
}

// The k most probable [token, probability] pairs, without sorting the whole vocabulary.
function topEntries(probs, k) {
    const top = [];
    for (const entry of probs) {
        if (top.length < k) {
            top.push(entry);
            if (top.length === k) top.sort((a, b) => b[1] - a[1]);
        } else if (entry[1] > top[k - 1][1]) {
            let i = k - 1;
            while (i > 0 && top[i - 1][1] < entry[1]) i--;
            top.splice(i, 0, entry);
            top.pop();
        }
    }
    return top.length < k ? top.sort((a, b) => b[1] - a[1]) : top;
}

function pearson(xs, ys) {
    const n = xs.length, mx = xs.reduce((a, b) => a + b) / n, my = ys.reduce((a, b) => a + b) / n;
    let sxy = 0, sxx = 0, syy = 0;
    for (let i = 0; i < n; i++) {
        sxy += (xs[i] - mx) * (ys[i] - my);
        sxx += (xs[i] - mx) ** 2;
        syy += (ys[i] - my) ** 2;
    }
    return sxy / Math.sqrt(sxx * syy);
}

const [refPath, refScheme] = files[0].split(":");
const ref = await distributions(refPath);
const failures = [];
const report = [];
for (const spec of files.slice(1)) {
    const [path, scheme] = spec.split(":");
    const bounds = expected.agreement?.[`${refScheme}->${scheme}`];
    if (!bounds) {
        failures.push(`${expectedPath} has no agreement bounds for "${refScheme}->${scheme}"`);
        continue;
    }
    const other = await distributions(path);
    if (JSON.stringify(other.tokens) !== JSON.stringify(ref.tokens)) failures.push(`${scheme}: the prompt tokenizes differently`);
    let top1Agree = 0, minCorr = 1, sumCorr = 0;
    const n = ref.result.length;
    for (let p = 0; p < n; p++) {
        const refTop = ref.result[p].top;
        const otherAll = other.result[p].all;
        const xs = refTop.map(([, pr]) => Math.log(pr));
        const ys = refTop.map(([t]) => Math.log(Math.max(otherAll.get(t) ?? 0, 1e-30)));
        const corr = pearson(xs, ys);
        minCorr = Math.min(minCorr, corr);
        sumCorr += corr;
        if (other.result[p].top[0][0] === refTop[0][0]) top1Agree++;
    }
    const row = {scheme, positions: n, top1_agreement: +(top1Agree / n).toFixed(3), mean_logprob_corr: +(sumCorr / n).toFixed(4),
        min_logprob_corr: +minCorr.toFixed(4)};
    report.push(row);
    if (row.top1_agreement < bounds.min_top1_agreement) failures.push(`${scheme}: top-1 agreement ${row.top1_agreement} < ${bounds.min_top1_agreement}`);
    if (row.mean_logprob_corr < bounds.min_mean_logprob_corr) failures.push(`${scheme}: mean log-prob correlation ${row.mean_logprob_corr} < ${bounds.min_mean_logprob_corr}`);
    other.result.length = 0;
}
console.log(JSON.stringify({reference: `${refPath} (${refScheme})`, compared_over: `top ${topK} tokens of the reference`, report}, null, 1));
await llama.dispose();
if (failures.length > 0) {
    console.error("FAIL:\n  " + failures.join("\n  "));
    process.exit(1);
}
console.log(`PASS: ${report.length} quantized variants track the ${refScheme} reference in llama.cpp`);
