// Shared helpers of the llama.cpp oracle (test-only, never part of the product): load llama.cpp through
// node-llama-cpp's prebuilt CPU binaries, capture its load log, and parse what llama.cpp itself says it
// read from a GGUF (its `print_info:` and `llama_model_loader:` lines), so checks compare against
// llama.cpp's interpretation rather than against another parser of ours.

import {existsSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const oracleDir = join(dirname(fileURLToPath(import.meta.url)), "..");

// Imports node-llama-cpp, or exits 1 with a message saying how to install it. A missing oracle must be
// a failure, never a pass or a skip: a green run without it would prove nothing.
export async function importNodeLlamaCpp() {
    if (!existsSync(join(oracleDir, "node_modules", "node-llama-cpp"))) {
        console.error(`FAIL: ${join(oracleDir, "node_modules")} has no node-llama-cpp. ` +
            "Install the oracle's pinned packages first (scripts/setup.sh, or `npm ci --omit=optional` " +
            "plus @node-llama-cpp/linux-x64 in tests/oracle).");
        process.exit(1);
    }
    try {
        return await import("node-llama-cpp");
    } catch (e) {
        console.error(`FAIL: node-llama-cpp is present but cannot be imported: ${e?.stack ?? e}`);
        process.exit(1);
    }
}

// A llama.cpp instance (CPU only, never compiles) whose log lines land in `log.lines`.
export async function getCpuLlama(nlc) {
    const log = {lines: []};
    const llama = await nlc.getLlama({
        gpu: false,
        build: "never",
        logLevel: nlc.LlamaLogLevel.debug,
        logger: (level, message) => {
            for (const line of String(message).split("\n")) {
                if (line.length > 0) log.lines.push(`${level}: ${line}`);
            }
        }
    });
    return {llama, log};
}

// Parses the lines llama.cpp prints while loading a model:
//   llama_model_loader: loaded meta data with N key-value pairs and M tensors from FILE
//   llama_model_loader: - kv   3:   general.alignment u32 = 32
//   llama_model_loader: - type  f32:   21 tensors
//   print_info: n_layer = 4                      (and file type / file size, with " = " too)
//   load_tensors: layer   0 assigned to device CPU, is_swa = 1
export function parseLoadLog(lines) {
    const out = {kvCount: null, tensorCount: null, tensorTypes: {}, kv: {}, printInfo: {}, swaLayers: [], layerCount: 0,
        warnings: []};
    for (const raw of lines) {
        const line = raw.replace(/^\w+: /, "");
        let m;
        if ((m = line.match(/llama_model_loader: loaded meta data with (\d+) key-value pairs and (\d+) tensors/))) {
            out.kvCount = Number(m[1]);
            out.tensorCount = Number(m[2]);
        } else if ((m = line.match(/llama_model_loader: - kv\s+\d+:\s+(\S+)\s+(\S+)\s+= (.*)$/))) {
            out.kv[m[1]] = {type: m[2], value: m[3].trim()};
        } else if ((m = line.match(/llama_model_loader: - type\s+(\S+):\s+(\d+) tensors/))) {
            out.tensorTypes[m[1]] = Number(m[2]);
        } else if ((m = line.match(/^print_info: (.+?)\s+= (.*)$/))) {
            const key = m[1].trim();
            // Repeated keys (EOG token) collect into a list.
            if (key in out.printInfo) {
                out.printInfo[key] = [].concat(out.printInfo[key], m[2].trim());
            } else {
                out.printInfo[key] = m[2].trim();
            }
        } else if ((m = line.match(/load_tensors: layer\s+(\d+) assigned to device \S+, is_swa = (\d)/))) {
            out.layerCount = Math.max(out.layerCount, Number(m[1]) + 1);
            if (m[2] === "1") out.swaLayers.push(Number(m[1]));
        }
        if (raw.startsWith("warn: ") || raw.startsWith("error: ")) out.warnings.push(raw);
    }
    return out;
}

// The value of a print_info entry as a number when it starts with one ("151643 '<|endoftext|>'" ->
// 151643, "1.0e-06" -> 1e-6), else the string.
export function printInfoValue(text) {
    const m = String(text).match(/^-?\d+(\.\d+)?(e[-+]?\d+)?(?=$|\s)/i);
    return m ? Number(m[0]) : String(text);
}
