import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { forwardCached } from '../src/generate/cached_forward.js';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { BatchDecoder, generate, generateBatch } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { argmax, penalizeRepeats, sampleToken } from '../src/generate/sampling.js';
import { StopStrings } from '../src/generate/stop_strings.js';
import { generateText, streamText } from '../src/generate/stream.js';
import { UserError } from '../src/util/errors.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const addon = loadAddon();
const backends = addon ? ['js', 'native'] : ['js'];
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

/** A small random GPT whose logits are spread enough that greedy choices are not near-ties. */
function tinyModel(seed = 3, blockSize = 24): GPT {
  const m = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 32, block_size: blockSize, vocab_size: 40, bias: true }), new Rng(seed));
  const r = new Rng(seed + 1);
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] = p.data[i]! + r.normal() * 0.05;
  return m.eval();
}

const prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [30, 31, 5, 2]];

for (const name of backends) {
  describe(`KV-cached generation (${name} backend)`, () => {
    it('gives the same greedy ids as recomputing the window, also past block_size', () => {
      setBackend(name);
      const m = tinyModel();
      for (const p of prompts) {
        const cached = [...generate(m, p, { maxNewTokens: 40, greedy: true })];
        const plain = [...generate(m, p, { maxNewTokens: 40, greedy: true, cache: false })];
        assert.deepEqual(cached, plain);
        assert.equal(cached.length, 40);
      }
    });

    it('cached logits equal full-forward logits at every step', () => {
      setBackend(name);
      const m = tinyModel();
      const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
      const cache = new KVCache(m.config, 1, 16);
      noGrad(() => {
        let got = forwardCached(m, Int32Array.from(ids.slice(0, 4)), [1, 4], cache);
        for (let t = 4; t <= ids.length; t++) {
          const want = m.nextTokenLogits(Int32Array.from(ids.slice(0, t)), [1, t]);
          assertClose(got.data, want.data, 2e-5, `step ${t}`);
          if (t < ids.length) got = forwardCached(m, Int32Array.of(ids[t]!), [1, 1], cache);
        }
      });
    });

    it('a padded batch gives each prompt the ids it gets alone (greedy and seeded sampling)', () => {
      setBackend(name);
      const m = tinyModel();
      for (const opts of [{ greedy: true }, { temperature: 0.9, topK: 10, seed: 5 }]) {
        const rows: number[][] = prompts.map(() => []);
        for (const step of generateBatch(m, prompts, { maxNewTokens: 12, ...opts })) step.forEach((id, b) => id !== null && rows[b]!.push(id));
        prompts.forEach((p, b) => {
          const alone = [...generate(m, p, { maxNewTokens: 12, ...opts, seed: (opts.seed ?? 1337) + b })];
          assert.deepEqual(rows[b], alone, `row ${b} ${JSON.stringify(opts)}`);
        });
      }
    });
  });
}

describe('generation options', () => {
  it('seeded sampling is reproducible and differs between seeds', () => {
    setBackend('js');
    const m = tinyModel();
    const run = (seed: number) => [...generate(m, [1, 2], { maxNewTokens: 20, temperature: 1.5, seed })];
    assert.deepEqual(run(1), run(1));
    assert.notDeepEqual(run(1), run(2));
  });

  it('stop tokens end a row; max tokens bound it', () => {
    setBackend('js');
    const m = tinyModel();
    const free = [...generate(m, [1, 2], { maxNewTokens: 15, greedy: true })];
    const stopAt = free[5]!;
    const first = free.indexOf(stopAt);
    const stopped = [...generate(m, [1, 2], { maxNewTokens: 15, greedy: true, stopTokens: [stopAt] })];
    assert.deepEqual(stopped, free.slice(0, first));
  });

  it('a prompt longer than the context is cropped with a warning, or refused', () => {
    setBackend('js');
    const m = tinyModel(3, 8);
    const warnings: string[] = [];
    const long = Array.from({ length: 20 }, (_, i) => i % 40);
    const got = [...generate(m, long, { maxNewTokens: 3, greedy: true, onWarning: (w) => warnings.push(w) })];
    assert.deepEqual(got, [...generate(m, long.slice(-7), { maxNewTokens: 3, greedy: true })]);
    assert.match(warnings[0]!, /20 tokens but the model's context is 8: keeping its last 7/);
    assert.throws(() => [...generate(m, long, { maxNewTokens: 3, longPrompt: 'error' })], (e) => e instanceof UserError && /shorten it/.test(e.message));
  });

  it('invalid sampling parameters are user errors', () => {
    const m = tinyModel();
    for (const [opts, re] of [
      [{ temperature: -1 }, /temperature/],
      [{ topK: 0 }, /top-k/],
      [{ topK: 2.5 }, /top-k/],
      [{ topP: 0 }, /top-p/],
      [{ topP: 1.5 }, /top-p/],
      [{ repetitionPenalty: 0 }, /repetition penalty/],
      [{ maxNewTokens: -1 }, /max new tokens/],
    ] as const) {
      assert.throws(() => new BatchDecoder(m, [[1]], { maxNewTokens: 3, ...opts }), (e) => e instanceof UserError && re.test(e.message), JSON.stringify(opts));
    }
    assert.throws(() => new BatchDecoder(m, [[]], { maxNewTokens: 3 }), UserError);
    assert.throws(() => new BatchDecoder(m, [[99]], { maxNewTokens: 3 }), /outside the vocabulary/);
  });
});

describe('sampling', () => {
  /** Brute force: the distribution sampleToken should draw from. */
  function reference(logits: Float32Array, t: number, k?: number, p?: number): Map<number, number> {
    const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, k ?? logits.length);
    let w = order.map((i) => Math.exp((logits[i]! - logits[order[0]!]!) / t));
    const total = w.reduce((a, b) => a + b, 0);
    if (p !== undefined) {
      let cum = 0;
      let n = 0;
      while (n < w.length && cum < p * total) cum += w[n++]!;
      w = w.slice(0, n);
    }
    const z = w.reduce((a, b) => a + b, 0);
    return new Map(w.map((x, i) => [order[i]!, x / z]));
  }

  it('draws from the top-k / top-p / temperature distribution', () => {
    const r = new Rng(4);
    const logits = Float32Array.from({ length: 30 }, () => r.normal() * 2);
    for (const [t, k, p] of [[1, undefined, undefined], [0.7, 5, undefined], [1.3, undefined, 0.6], [1, 8, 0.9]] as const) {
      const want = reference(logits, t, k, p);
      const counts = new Map<number, number>();
      const rng = new Rng(9);
      const n = 20000;
      for (let i = 0; i < n; i++) {
        const id = sampleToken(logits, { temperature: t, ...(k ? { topK: k } : {}), ...(p ? { topP: p } : {}) }, rng);
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      for (const id of counts.keys()) assert.ok(want.has(id), `sampled ${id} outside the allowed set (t=${t} k=${k} p=${p})`);
      for (const [id, q] of want) assert.ok(Math.abs((counts.get(id) ?? 0) / n - q) < 0.015, `token ${id}: ${(counts.get(id) ?? 0) / n} vs ${q}`);
    }
  });

  it('greedy is argmax; the repetition penalty divides positive and multiplies negative logits', () => {
    const l = Float32Array.of(1, 4, -2, 3);
    assert.equal(sampleToken(l, { greedy: true }, new Rng(1)), 1);
    assert.equal(argmax(l), 1);
    penalizeRepeats(l, [1, 2, 1], 2);
    assert.deepEqual([...l], [1, 2, -4, 3]);
    assert.equal(argmax(l), 3);
  });
});

describe('stop strings and streaming', () => {
  it('StopStrings holds back possible prefixes and cuts at the stop string', () => {
    const s = new StopStrings(['END', '\n\n']);
    assert.equal(s.push('hello E'), 'hello ');
    assert.equal(s.push('N'), '');
    assert.equal(s.push('D and more'), '');
    assert.equal(s.stopped, true);
    const t = new StopStrings(['END']);
    assert.equal(t.push('ok EN'), 'ok ');
    assert.equal(t.push('jo'), 'ENjo');
    assert.equal(t.flush(), '');
  });

  it('streamText yields text as an async iterator and stops at a stop string', async () => {
    setBackend('js');
    const tok = new CharTokenizer('abcdefghijklmnopqrstuvwxyz .\n'.split(''));
    const m = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 32, vocab_size: tok.vocabSize }), new Rng(2)).eval();
    const [full] = await generateText(m, tok, 'ab', { maxNewTokens: 30, temperature: 1, seed: 4 });
    assert.equal(full!.length, 30);
    const stop = full!.slice(10, 12);
    const [cut] = await generateText(m, tok, 'ab', { maxNewTokens: 30, temperature: 1, seed: 4, stop: [stop] });
    assert.equal(cut, full!.slice(0, full!.indexOf(stop)));
    const chunks: string[] = [];
    for await (const c of streamText(m, tok, ['ab', 'xyz q'], { maxNewTokens: 5, greedy: true })) chunks.push(`${c.row}:${c.text}`);
    assert.equal(chunks.length, 10);
  });
});
