import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import { saveAdapter } from '../src/io/peft.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { addLoRA, loraLayers } from '../src/nn/lora.js';
import { parseServeConfig, type ServeConfigInput } from '../src/serve/config.js';
import { createLogger } from '../src/serve/logging.js';
import { startServer, type AttnServer, type ServeOptions } from '../src/serve/server.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { Rng } from '../src/util/rng.js';

/** Printable ASCII and newline: every test prompt encodes. */
export const tinyTokenizer = (): CharTokenizer => new CharTokenizer([...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\n'].sort());

/** A small random GPT whose logits are spread enough that greedy choices are not near-ties. */
export function tinyGPT(seed = 3, blockSize = 64, vocab = 96): GPT {
  const m = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 32, block_size: blockSize, vocab_size: vocab, bias: true, dropout: 0 }), new Rng(seed));
  const r = new Rng(seed + 1);
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] = p.data[i]! + r.normal() * 0.05;
  return m.eval();
}

/** The target's weights plus noise: a draft model (speculative decoding) that agrees with it often, not always. */
export function nearDraft(target: GPT, noise: number): GPT {
  const d = new GPT(target.config, new Rng(1));
  const r = new Rng(99);
  const src = target.parameters();
  d.parameters().forEach((p, i) => p.data.set(Float32Array.from(src[i]!.data, (x) => x + r.normal() * noise)));
  return d.eval();
}

/** A model directory in a fresh temporary folder; call the returned cleanup when done. */
export function tinyModelDir(name = 'tiny', seed = 3): { dir: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'attn-serve-test-'));
  const dir = join(root, name);
  writeDirAtomic(dir, modelFiles(tinyGPT(seed), tinyTokenizer()));
  return { dir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export const silentLogger = () => createLogger({ level: 'silent' });

/** A server on a free loopback port serving in-memory tiny models ("tiny", or the names given), logs off. */
export function startTiny(opts: Partial<ServeOptions> & { names?: string[]; configInput?: ServeConfigInput; blockSize?: number } = {}): Promise<AttnServer> {
  const names = opts.names ?? ['tiny'];
  const { names: _n, configInput, blockSize, ...rest } = opts;
  return startServer({
    models: names.map((name, i) => ({ name, model: tinyGPT(3 + i, blockSize), tokenizer: tinyTokenizer() })),
    port: 0,
    logger: silentLogger(),
    ...(configInput ? { config: parseServeConfig(configInput) } : {}),
    ...rest,
  });
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, headers: res.headers, json };
}

/** Resolves when `cond` holds, polling every few milliseconds; rejects after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An adapter for tinyGPT(3) with random (non-zero) B, saved in PEFT's layout. */
export function makeAdapter(dir: string, seed: number, targets: string[]): void {
  const m = tinyGPT(3);
  addLoRA(m, { r: 4, alpha: 8, targets, rng: new Rng(seed) });
  const rng = new Rng(seed + 100);
  for (const [, l] of loraLayers(m)) for (let i = 0; i < l.lora_B.weight.size; i++) l.lora_B.weight.data[i] = rng.normal() * 0.5;
  saveAdapter(m, dir);
}
