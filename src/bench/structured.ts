import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fablesCorpus } from '../data/fables.js';
import { loadGPT } from '../io/model_dir.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { JsonConstraint } from '../generate/constrained/json_constraint.js';
import { forwardCached } from '../generate/cached_forward.js';
import { KVCache } from '../generate/kv_cache.js';
import { argmax } from '../generate/sampling.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { startServer } from '../serve/server.js';
import { createLogger } from '../serve/logging.js';
import { noGrad } from '../tensor/autograd.js';
import { parseTrainOptions } from '../train/options.js';
import { train } from '../train/trainer.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import { DECODE_CONFIGS } from './decode.js';
import { randomSchemas } from './random_schemas.js';
import { gpt2FromJsTiktoken } from './tokenizers.js';
import type { Row } from './workloads.js';

/**
 * The goals of structured outputs (issue #18), as `attn bench --workloads structured`:
 *
 * - validity: `count` generated JSON Schemas sent to `attn serve` as
 *   response_format json_schema requests (sampled, temperature 1), answered
 *   by a model with random weights and by one trained for 30 steps; every
 *   answer must parse and validate under ajv (an independent validator,
 *   loaded if installed: it is a development dependency);
 * - mask cost: batch-1 decoding of the 124M shape with the GPT-2 vocabulary,
 *   plain and constrained, in one run (rounds interleaved), and the time of
 *   the mask alone per token.
 */

/** The same schema the mask-cost run follows: strings (the widest masks), numbers, enums, arrays. */
const COST_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    city: { type: 'string' },
    age: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 4 },
    mood: { enum: ['happy', 'sad', 'calm'] },
  },
  required: ['name', 'city', 'age', 'tags', 'mood'],
  additionalProperties: false,
};

/** Decoding with and without the constraint: tokens/s of each, and the mask's own time per token. */
export async function benchMaskCost(steps: number, rounds = 3): Promise<Row | null> {
  const tok = await gpt2FromJsTiktoken();
  if (!tok) return null;
  const model = new GPT(parseGPTConfig(DECODE_CONFIGS['124M']!), new Rng(1)).eval();
  const V = model.config.vocab_size;
  const t0 = performance.now();
  const constraint = JsonConstraint.fromSchema(COST_SCHEMA, tok, V, [50256]);
  const trieMs = performance.now() - t0;
  const prompt = tok.encode('Answer as JSON:');
  const plain: number[] = [];
  const constrained: number[] = [];
  const masks: number[] = [];
  // A random model's greedy choice inside a string rarely closes it: pick among the allowed
  // tokens at random instead, so the documents move through every kind of state.
  const rng = new Rng(5);
  const run = (withMask: boolean, timed: boolean) =>
    noGrad(() => {
      const cache = new KVCache(model.config, 1, prompt.length + steps + 1);
      let doc = constraint.start();
      let next = argmax(forwardCached(model, prompt, [1, prompt.length], cache).data);
      for (let i = 0; i < steps; i++) {
        const s0 = performance.now();
        const logits = forwardCached(model, Int32Array.of(next), [1, 1], cache).data;
        let ms = performance.now() - s0;
        if (withMask) {
          if (doc.finished) doc = constraint.start();
          const m0 = performance.now();
          doc.mask(logits);
          const m1 = performance.now();
          // Untimed: the random choice among the allowed tokens stands in for a trained model's.
          for (let j = 0; j < logits.length; j++) if (logits[j] !== -Infinity) logits[j] = rng.random();
          const a0 = performance.now();
          next = argmax(logits);
          doc.accept(next);
          const cost = m1 - m0 + performance.now() - a0;
          ms += cost;
          if (timed) masks.push(cost);
        } else next = argmax(logits);
        if (timed) (withMask ? constrained : plain).push(ms);
      }
    });
  run(false, false);
  run(true, false);
  for (let r = 0; r < rounds; r++) {
    run(false, true);
    run(true, true);
  }
  const plainMs = median(plain);
  const constrainedMs = median(constrained);
  return {
    workload: 'structured',
    measure: 'mask_cost',
    config: '124M',
    vocab: V,
    tokens_per_s_plain: 1000 / plainMs,
    tokens_per_s_constrained: 1000 / constrainedMs,
    mask_ms_median: median(masks),
    /** The mask's share of a plain decoding step: the figure the goal (≤ 10 %) is about, robust to machine load shared by both. */
    mask_fraction_of_step: median(masks) / plainMs,
    mask_ms_mean: masks.reduce((a, b) => a + b, 0) / masks.length,
    overhead_fraction: 1 - plainMs / constrainedMs,
    trie_build_ms: trieMs,
    steps_per_round: steps,
    rounds,
  };
}

/**
 * A small char-level GPT trained `steps` steps on fables (plus every
 * printable character, so that its vocabulary can write any JSON), saved to
 * a temporary directory and loaded back as a server would load it.
 */
export function trainedModel(steps: number): { model: GPT; tokenizer: Tokenizer } {
  const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
  const text = `${fablesCorpus(60_000)}\n${printable}\nünïcode 日本\n`;
  const options = parseTrainOptions({ nLayer: 2, nHead: 2, nEmbd: 64, blockSize: 256, batchSize: 8, maxIters: steps, warmupIters: 5, evalInterval: Math.max(1, steps), evalIters: 2, logInterval: 1000 });
  const root = mkdtempSync(join(tmpdir(), 'attn-structured-'));
  try {
    const out = join(root, 'model');
    train({ text, dataPath: '(fables)', options, out });
    const { model, tokenizer } = loadGPT(out, 'attn bench');
    return { model, tokenizer: tokenizer! };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * `count` random schemas as json_schema requests to a server holding the
 * model; the share of answers that parse and validate (ajv), by model.
 */
export async function benchValidity(count: number, model: GPT, tokenizer: Tokenizer, label: string): Promise<Row | null> {
  let Ajv: new (o: object) => { compile(s: object): ((v: unknown) => boolean) & { errors?: unknown } };
  try {
    Ajv = ((await import('ajv' as string)) as { Ajv: typeof Ajv }).Ajv;
  } catch {
    return null;
  }
  const ajv = new Ajv({ strict: false });
  const server = await startServer({ models: [{ name: label, model, tokenizer }], port: 0, logger: createLogger({ level: 'silent' }), cache: null });
  const schemas = randomSchemas(count, 2026);
  let parsed = 0;
  let valid = 0;
  let tokens = 0;
  const failures: string[] = [];
  const t0 = performance.now();
  try {
    let next = 0;
    const worker = async () => {
      while (next < schemas.length) {
        const i = next++;
        const schema = schemas[i]!;
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: label, messages: [{ role: 'user', content: 'Give me the record as JSON.' }], max_tokens: 200, temperature: 1, seed: i, response_format: { type: 'json_schema', json_schema: { name: `s${i}`, schema, strict: true } } }),
        });
        const body = (await res.json()) as { choices?: Array<{ message: { content: string } }>; usage?: { completion_tokens: number }; error?: { message: string } };
        const text = body.choices?.[0]?.message.content;
        tokens += body.usage?.completion_tokens ?? 0;
        let value: unknown;
        try {
          value = JSON.parse(text ?? '');
          parsed++;
        } catch {
          failures.push(`${i}: ${res.status} ${body.error?.message ?? text}`);
          continue;
        }
        if (ajv.compile(schema)(value)) valid++;
        else failures.push(`${i}: invalid ${text}`);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
  } finally {
    await server.close();
  }
  return { workload: 'structured', measure: 'validity', model: label, requests: count, parsed, valid, valid_fraction: valid / count, completion_tokens: tokens, seconds: (performance.now() - t0) / 1000, first_failures: failures.slice(0, 3).join(' | ') };
}


/** `attn bench --workloads structured`: both goals, in this process. */
export async function structuredBench(steps: number, log: (s: string) => void, emit: (r: Row) => void): Promise<void> {
  const cost = await benchMaskCost(Math.max(24, steps * 8));
  if (!cost) log('structured: mask cost skipped (js-tiktoken, for the GPT-2 vocabulary, is not installed)');
  else {
    emit(cost);
    log(`structured mask cost, 124M batch-1 decode: ${Number(cost.tokens_per_s_plain).toFixed(1)} tokens/s plain, ${Number(cost.tokens_per_s_constrained).toFixed(1)} constrained (${(100 * Number(cost.overhead_fraction)).toFixed(1)} % slower); mask and accept ${Number(cost.mask_ms_median).toFixed(3)} ms median per token = ${(100 * Number(cost.mask_fraction_of_step)).toFixed(1)} % of a plain step`);
  }
  for (const [label, stepsTrained] of [['random', 0], ['trained-30', 30]] as const) {
    const { model, tokenizer } = trainedModel(stepsTrained);
    const r = await benchValidity(500, model, tokenizer, label);
    if (!r) return log('structured: validity skipped (ajv, a development dependency, is not installed)');
    emit({ ...r, train_steps: stepsTrained });
    log(`structured validity, ${label} (${stepsTrained} training steps): ${r.valid}/${r.requests} valid, ${r.parsed} parse (${Number(r.seconds).toFixed(0)} s)${r.first_failures ? ` — first failures: ${r.first_failures}` : ''}`);
  }
}
