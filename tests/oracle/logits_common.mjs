// Shared llama.cpp side of the engine comparisons (logits_compare.mjs): loads a GGUF with node-llama-cpp's
// prebuilt CPU binaries and computes, for token ids we choose,
//   - teacher-forced next-token log-probabilities of llama.cpp's top-K tokens at every position, and
//   - a greedy continuation with the top-1/top-2 margin of every step.
//
// node-llama-cpp exposes probabilities only through its sampler (controlledEvaluate). Asking for the
// full-vocabulary map costs ~200 ms per position (a 150k-entry JS Map), so each position is evaluated in
// two cheap passes instead:
//   pass A: greedy sampler + `confidence`: p_top over the FULL vocabulary (softmax of the raw logits);
//   pass B: temperature 1, top-k K, top-p 1, min-p 0 + `probabilities`: the K best tokens with their
//           probabilities renormalized over those K.
// Renormalization cancels in ratios, so log p_i = log p_top(A) + log q_i(B) − log q_top(B): exact
// full-vocabulary log-probs of the K best tokens. Both passes run the same ids through the same context
// settings, so their logits are identical.
import {getLlama} from "node-llama-cpp";

export const PROMPTS = [
  {
    name: "prose",
    text:
      "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting each of the one hundred " +
      "and twelve steps as his father had done before him. From the lantern room he could see the whole bay: " +
      "the fishing boats returning with their nets, the ferry to the mainland, and far out on the horizon the " +
      "grey silhouettes of cargo ships waiting for the tide. He wiped the great lens with a soft cloth, checked " +
      "the oil, and wrote the time in the logbook in small, careful letters. Nobody had asked him to keep the " +
      "log for years; the light had been automated long ago, and the inspectors came only twice a year. Still, " +
      "he kept it, because a record of small things, he believed, was how a place remembered itself. On stormy " +
      "nights he stayed awake until morning, listening to the wind hammer the windows and the sea throw itself " +
      "against the rocks below, and in the first pale light he would walk down to the shore to see what the " +
      "waves had left behind: driftwood, a child's shoe, glass floats from distant harbours, once a letter in a " +
      "bottle that he never opened.",
  },
  {
    name: "code",
    text:
      "// Binary search over a sorted vector; returns the index of the first element >= key.\n" +
      "#include <cstddef>\n#include <vector>\n\n" +
      "std::size_t lower_bound_index(const std::vector<int>& values, int key) {\n" +
      "  std::size_t lo = 0, hi = values.size();\n" +
      "  while (lo < hi) {\n" +
      "    const std::size_t mid = lo + (hi - lo) / 2;\n" +
      "    if (values[mid] < key) {\n      lo = mid + 1;\n    } else {\n      hi = mid;\n    }\n  }\n  return lo;\n}\n\n" +
      "int main() {\n  std::vector<int> v{1, 3, 3, 7, 12, 19, 42, 64, 128, 1024};\n" +
      "  for (int k : {0, 3, 8, 42, 2048}) {\n" +
      "    std::printf(\"%d -> %zu\\n\", k, lower_bound_index(v, k));\n  }\n" +
      "  // Expected: 0 -> 0, 3 -> 1, 8 -> 4, 42 -> 6, 2048 -> 10\n  return 0;\n}\n" +
      "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n" +
      "print([fib(i) for i in range(20)])\n",
  },
  {
    name: "mixed",
    text:
      "Grüße aus München! Der Zug nach Zürich fährt um 14:37 von Gleis 9 ab, Ankunft 18:52. " +
      "东京的天气预报说明天下午会下雨，气温在十五到二十度之间。 Les élèves étudient la photosynthèse : " +
      "6 CO2 + 6 H2O → C6H12O6 + 6 O2. Числа: 3.14159, 2.71828, 1.41421, 299792458 м/с. " +
      "日本語の文章とEnglish words mixed together 😀🚀✨ with emoji, tabs\tand\tnewlines\n\n" +
      "SELECT name, COUNT(*) AS n FROM orders WHERE total > 100.50 GROUP BY name ORDER BY n DESC LIMIT 10; " +
      "مرحبا بالعالم — שלום עולם — नमस्ते दुनिया. Prices: $19.99, €24,50, £7.00, ¥1200. " +
      "JSON: {\"id\": 42, \"tags\": [\"alpha\", \"beta\"], \"ok\": true, \"ratio\": 0.125}. " +
      "The quick brown fox jumps over the lazy dog 1234567890 times; ÄÖÜ äöü ß ñ ç ø å.",
  },
];

export async function load_llama(model_path, {threads = 2, context_size = 1024} = {}) {
  const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
  const model = await llama.loadModel({modelPath: model_path});
  // Flash attention off and an F32 KV cache keep llama.cpp's attention close to plain fp32 math, so the
  // remaining differences come from how it quantizes activations for each weight type.
  const context = await model.createContext({
    contextSize: context_size,
    batchSize: 512,
    threads,
    sequences: 2,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  // Two sequences, reused (cleared) for every evaluation: disposed sequences are not handed out again.
  const sequences = [context.getSequence(), context.getSequence()];
  return {llama, model, context, sequences};
}

const PASS_B = (k) => ({temperature: 1, topK: k, topP: 1, minP: 0, seed: 1});

// Teacher forcing: for each position i, llama.cpp's K best next tokens after ids[0..i] as [id, logprob].
export async function teacher_top_k(sequences, ids, k = 40) {
  const [seq_a, seq_b] = sequences;
  await seq_a.clearHistory();
  await seq_b.clearHistory();
  {
    const a = await seq_a.controlledEvaluate(ids.map((t) => [t, {generateNext: {token: true, confidence: true}}]));
    const b = await seq_b.controlledEvaluate(ids.map((t) => [t, {generateNext: {probabilities: true, options: PASS_B(k)}}]));
    const out = [];
    for (let i = 0; i < ids.length; ++i) {
      const p_top = a[i].next.confidence;
      const entries = [...b[i].next.probabilities.entries()];
      if (entries[0][0] !== a[i].next.token) {
        // Only possible on an exact tie between the best tokens; the log-probs are still right.
        if (entries[0][1] !== entries[1][1]) throw new Error(`pass A/B disagree at position ${i}`);
      }
      const q_top = entries[0][1];
      out.push(entries.map(([id, q]) => [id, Math.log(p_top) + Math.log(q) - Math.log(q_top)]));
    }
    return out;
  }
}

// Short windows for the activation-rounding check: `count` runs of `length` tokens cut from the prompts'
// token ids (spread over their positions), each evaluated from an empty cache by teacher_top_k. Rounding
// is discontinuous: once one value lands on the other side of a rounding boundary in llama.cpp and not in
// our emulation, the two part for every later position of that sequence; short sequences keep most
// positions before that happens (docs/accuracy.md).
export async function teacher_windows(sequences, prompt_ids, {count = 24, length = 8, k = 40} = {}) {
  const out = [];
  for (let i = 0; i < count; ++i) {
    const ids = prompt_ids[i % prompt_ids.length];
    const start = Math.floor(i / prompt_ids.length) * 27 + (i % prompt_ids.length) * 5;
    const tokens = ids.slice(start, start + length);
    if (tokens.length < length) throw new Error(`window ${i} runs past its prompt (${ids.length} tokens)`);
    out.push({name: `window${i}`, tokens, top: await teacher_top_k(sequences, tokens, k)});
  }
  return out;
}

// Greedy continuation of `prompt` for n steps (llama.cpp's own generation loop at temperature 0: prefill,
// then one-token decodes), and the top-1/top-2 log-prob margin at each step, read afterwards from one
// teacher-forced pass over prompt + continuation (one controlledEvaluate call per step would cost ~0.3 s
// of scheduling each).
export async function greedy(sequences, prompt, n) {
  const [seq, seq_b] = sequences;
  await seq.clearHistory();
  await seq_b.clearHistory();
  const tokens = [];
  for await (const t of seq.evaluate(prompt, {temperature: 0})) {
    tokens.push(t);
    if (tokens.length >= n) break;
  }
  const all = [...prompt, ...tokens];
  const res = await seq_b.controlledEvaluate(all.map((t, i) =>
    (i + 1 >= prompt.length ? [t, {generateNext: {probabilities: true, options: PASS_B(2)}}] : t)));
  const margins = [];
  for (let s = 0; s < n; ++s) {
    const entries = [...res[prompt.length - 1 + s].next.probabilities.entries()];
    margins.push(entries.length > 1 ? Math.log(entries[0][1]) - Math.log(entries[1][1]) : Infinity);
  }
  return {tokens, margins};
}
