import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { batchForward, type SequenceKV } from '../src/generate/batch_step.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { KVBlockPool, KVPoolFullError } from '../src/generate/paged_kv/block_pool.js';
import { PagedSequence } from '../src/generate/paged_kv/paged_sequence.js';
import { PrefixCache } from '../src/generate/paged_kv/prefix_cache.js';
import type { CausalLM } from '../src/models/causal_lm.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';
import { tinyGPT } from './serve_fixture.js';

const addon = loadAddon();
const backends = addon ? ['js', 'native'] : ['js'];
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

/** A llama-tiny shape: RMSNorm, RoPE, SwiGLU, grouped KV heads (4 query heads over 2). */
function tinyLlama(): Llama {
  const m = new Llama(parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 48, vocab_size: 96, block_size: 128, rms_norm_eps: 1e-5 }), new Rng(4));
  const r = new Rng(5);
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] = p.data[i]! + r.normal() * 0.05;
  return m.eval() as Llama;
}

const argmax = (row: Float32Array) => row.reduce((best, x, i) => (x > row[best]! ? i : best), 0);

/**
 * Greedy decoding of `prompts` through batchForward: the prompts of `groups[0]` join first, then each
 * later group joins while the earlier ones decode (a continuous batch). Returns every row's tokens and
 * the scores that chose them.
 */
function decode(model: CausalLM, prompts: number[][], caches: SequenceKV[], steps: number, joinFirst: number[]): { ids: number[][]; scores: Float32Array[][] } {
  const V = model.config.vocab_size;
  const ids = prompts.map(() => [] as number[]);
  const scores = prompts.map(() => [] as Float32Array[]);
  const prefilled = caches.map((c) => (c instanceof PagedSequence ? c.length : 0)); // slots adopted from a cached prefix
  let running: number[] = [];
  let pending = [...joinFirst, ...prompts.keys()].filter((v, i, a) => a.indexOf(v) === i);
  for (let step = 0; pending.length > 0 || running.length > 0; step++) {
    const joining = step === 0 ? pending.filter((i) => joinFirst.includes(i)) : pending.slice(0, 2);
    pending = pending.filter((i) => !joining.includes(i));
    const rows = [...running, ...joining];
    const chunks = rows.map((r) => (joining.includes(r) ? Int32Array.from(prompts[r]!.slice(prefilled[r])) : Int32Array.of(ids[r]!.at(-1)!)));
    const logits = batchForward(model, chunks, rows.map((r) => caches[r]!));
    rows.forEach((r, b) => {
      const row = logits.slice(b * V, (b + 1) * V);
      scores[r]!.push(row);
      ids[r]!.push(argmax(row));
      const c = caches[r]!;
      if (joining.includes(r) && c instanceof PagedSequence) c.publishPrefix(prompts[r]!);
    });
    running = rows.filter((r) => ids[r]!.length < steps);
  }
  return { ids, scores };
}

for (const name of backends) {
  for (const [family, make] of [['GPT', () => tinyGPT(3, 128)], ['llama-tiny', tinyLlama]] as const) {
    describe(`paged KV cache generation (${family}, ${name} backend)`, () => {
      const rng = new Rng(9);
      const system = Array.from({ length: 20 }, () => rng.int(96));
      const prompts = [[...system, 4, 5], [...system, 7], [3, 1, 4, 1, 5, 9, 2, 6], [...system], [...system.slice(0, 10), 8, 8, 8], [42]];

      it('gives the tokens and scores of the contiguous KV cache, sequences joining mid-decode', () => {
        setBackend(name);
        const m = make();
        const contiguous = decode(m, prompts, prompts.map((p) => new KVCache(m.config, 1, p.length + 12)), 12, [0, 1]);
        const pool = new KVBlockPool(m.config, 4, 64);
        const paged = decode(m, prompts, prompts.map(() => new PagedSequence(pool, null, m.config.block_size)), 12, [0, 1]);
        assert.deepEqual(paged.ids, contiguous.ids);
        paged.scores.forEach((rows, r) => rows.forEach((row, t) => assertClose(row, contiguous.scores[r]![t]!, 1e-6, `row ${r} step ${t}`)));
      });

      it('shares a prompt prefix prefilled once (the shared blocks read in place, a fully cached prompt copied on write) with the same tokens', () => {
        setBackend(name);
        const m = make();
        const want = decode(m, prompts, prompts.map((p) => new KVCache(m.config, 1, p.length + 12)), 12, [0]);
        const pool = new KVBlockPool(m.config, 4, 64);
        const prefixes = new PrefixCache(pool);
        // The first prompt alone, its full blocks published; the others then adopt what they share of it.
        const first = new PagedSequence(pool, prefixes, m.config.block_size);
        const caches = [first, ...prompts.slice(1).map(() => new PagedSequence(pool, prefixes, m.config.block_size))];
        const adopted: number[] = [];
        const got = (() => {
          const V = m.config.vocab_size;
          const logits = batchForward(m, [Int32Array.from(prompts[0]!)], [first]);
          first.publishPrefix(prompts[0]!);
          caches.slice(1).forEach((c, i) => adopted.push(c.adoptPrefix(prompts[i + 1]!)));
          const rest = decode(m, prompts.slice(1), caches.slice(1), 12, [0]);
          // Row 0 continues alone from its prefill, as in `want`.
          const ids0 = [argmax(logits.subarray(0, V))];
          while (ids0.length < 12) ids0.push(argmax(batchForward(m, [Int32Array.of(ids0.at(-1)!)], [first])));
          return [ids0, ...rest.ids];
        })();
        // The 5 full 4-token blocks of the 20-token system prompt; the prompt that is all system re-runs its last token;
        // the one that keeps 10 system tokens adopts 2 blocks and 2 slots of the third (copied before it writes there).
        assert.deepEqual(adopted, [20, 0, 19, 10, 0]);
        assert.deepEqual(got, want.ids);
        const shared = first.table.slice(0, 5);
        assert.deepEqual(caches[1]!.table.slice(0, 5), shared, 'a sharer reads the first prefill\'s blocks');
        assert.deepEqual(caches[3]!.table.slice(0, 4), shared.slice(0, 4));
        assert.notEqual(caches[3]!.table[4], shared[4], 'the fully cached prompt wrote its last token into a copy of the shared block');
        assert.deepEqual(caches[4]!.table.slice(0, 2), shared.slice(0, 2));
        assert.notEqual(caches[4]!.table[2], shared[2], 'the prompt that diverges inside a block wrote into a copy of it');
      });

      it('reserves every block before a pass, so a pool that runs out fails cleanly and nothing is half written', () => {
        setBackend(name);
        const m = make();
        const pool = new KVBlockPool(m.config, 4, 3);
        const seq = new PagedSequence(pool, null, m.config.block_size);
        assert.throws(() => batchForward(m, [Int32Array.from({ length: 13 }, (_, i) => i)], [seq]), KVPoolFullError);
        assert.equal(seq.length, 0);
        seq.free();
        assert.equal(pool.freeBlocks, 3);
      });
    });
  }
}
