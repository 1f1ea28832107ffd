import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attentionCached } from '../src/backend/js/attention_cached.js';
import { attentionPaged } from '../src/backend/js/attention_paged.js';
import { KVBlockPool, KVPoolFullError } from '../src/generate/paged_kv/block_pool.js';
import { PagedSequence } from '../src/generate/paged_kv/paged_sequence.js';
import { PrefixCache } from '../src/generate/paged_kv/prefix_cache.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const shape = { n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, block_size: 256 };

/** Fill slots from..to−1 of a sequence in every layer with values derived from `tag` (so a test can tell whose they are). */
function write(pool: KVBlockPool, seq: PagedSequence, from: number, to: number, tag: number): void {
  for (let t = from; t < to; t++) {
    const o = seq.slotOffset(t);
    for (let l = 0; l < pool.k.length; l++) for (let e = 0; e < pool.width; e++) {
      (pool.k as Float32Array[])[l]![o + e] = tag + t + e / 100;
      (pool.v as Float32Array[])[l]![o + e] = -(tag + t) + e / 100;
    }
  }
  seq.length = Math.max(seq.length, to);
}

describe('paged KV cache', () => {
  it('attention read through block tables equals attention over a contiguous cache', () => {
    const rng = new Rng(5);
    const pool = new KVBlockPool(shape, 4, 32);
    for (const a of [...(pool.k as Float32Array[]), ...(pool.v as Float32Array[])]) for (let i = 0; i < a.length; i++) a[i] = rng.normal();
    const [nHead, nKvHead, headDim] = [4, 2, 8];
    const d = { nHead, nKvHead, headDim, scale: 1 / Math.sqrt(headDim), blockTokens: 4 };
    // Three sequences over shuffled blocks: a prefill, a decode step, a 3-token verify.
    const order = Array.from({ length: 32 }, (_, i) => i).sort(() => rng.random() - 0.5);
    const seqs = [{ past: 0, Tq: 7, table: order.slice(0, 2) }, { past: 12, Tq: 1, table: order.slice(2, 6) }, { past: 5, Tq: 3, table: order.slice(6, 8) }];
    let offset = 0;
    const paged = seqs.map((s) => ({ ...s, offset: (offset += s.Tq) - s.Tq }));
    const q = Float32Array.from({ length: offset * nHead * headDim }, () => rng.normal());
    const out = new Float32Array(q.length);
    attentionPaged(q, out, (pool.k as Float32Array[])[0]!, (pool.v as Float32Array[])[0]!, paged, d);
    for (const s of paged) {
      const cap = s.past + s.Tq;
      const Ckv = nKvHead * headDim;
      const k = new Float32Array(cap * Ckv);
      const v = new Float32Array(cap * Ckv);
      for (let j = 0; j < cap; j++) {
        const o = pool.offset(s.table[Math.floor(j / 4)]!, j % 4);
        k.set((pool.k as Float32Array[])[0]!.subarray(o, o + Ckv), j * Ckv);
        v.set((pool.v as Float32Array[])[0]!.subarray(o, o + Ckv), j * Ckv);
      }
      const rows = (a: Float32Array) => a.subarray(s.offset * nHead * headDim, (s.offset + s.Tq) * nHead * headDim);
      const want = new Float32Array(s.Tq * nHead * headDim);
      attentionCached(rows(q), k, v, want, Int32Array.of(0), { B: 1, Tq: s.Tq, past: s.past, cap, nHead, nKvHead, headDim, scale: d.scale });
      assertClose(rows(out), want, 1e-5, `sequence at ${s.offset}`);
    }
  });

  it('shares the full blocks of a common prompt prefix, so only the rest is prefilled and stored', () => {
    const pool = new KVBlockPool(shape, 4, 64);
    const prefixes = new PrefixCache(pool);
    const system = Array.from({ length: 40 }, (_, i) => i % 7);
    const a = new PagedSequence(pool, prefixes);
    const promptA = [...system, 1, 2, 3];
    assert.equal(a.adoptPrefix(promptA), 0, 'nothing cached yet');
    a.reserve(promptA.length);
    write(pool, a, 0, promptA.length, 1000);
    a.publishPrefix(promptA);
    const used = pool.usedBlocks;
    const others = [5, 6, 7].map((x) => {
      const s = new PagedSequence(pool, prefixes);
      const prompt = [...system, x];
      const cached = s.adoptPrefix(prompt);
      assert.equal(cached, 40, 'the 10 full blocks of the system prompt are reused');
      s.reserve(prompt.length - cached);
      write(pool, s, cached, prompt.length, 2000 + x);
      return s;
    });
    assert.equal(pool.usedBlocks, used + 3, 'each newcomer stores one block of its own');
    for (const s of others) {
      assert.deepEqual(s.table.slice(0, 10), a.table.slice(0, 10));
      assert.equal((pool.k as Float32Array[])[0]![s.slotOffset(39)], 1000 + 39, 'the shared slots hold the first prefill');
    }
    // A prompt that differs inside the second block shares the first, and the one slot of the second before the difference.
    const c = new PagedSequence(pool, prefixes);
    assert.equal(c.adoptPrefix([...system.slice(0, 5), 99, ...system.slice(6)]), 5);
    assert.deepEqual(c.table, a.table.slice(0, 2));
  });

  it('adopts the agreeing slots of a cached block when a shared prompt ends inside it, and copies that block before writing', () => {
    const pool = new KVBlockPool(shape, 4, 64);
    const prefixes = new PrefixCache(pool);
    const system = Array.from({ length: 42 }, (_, i) => 10 + (i % 5)); // 10 full blocks and 2 slots of an 11th
    const a = new PagedSequence(pool, prefixes);
    const promptA = [...system, 1, 2, 3];
    a.adoptPrefix(promptA);
    a.reserve(promptA.length);
    write(pool, a, 0, promptA.length, 1000);
    a.publishPrefix(promptA); // 11 full blocks: the 11th holds system[40], system[41], 1, 2
    const hits = prefixes.hitTokens;
    const b = new PagedSequence(pool, prefixes);
    const promptB = [...system, 7, 8];
    assert.equal(b.adoptPrefix(promptB), 42, 'the 10 full blocks and 2 slots of the 11th');
    assert.equal(prefixes.hitTokens - hits, 42);
    assert.equal(prefixes.hits, 1, 'one lookup, one hit');
    assert.equal(b.table[10], a.table[10], 'adopted in place until it writes');
    b.reserve(promptB.length - 42);
    assert.notEqual(b.table[10], a.table[10], 'its first write copied the block');
    write(pool, b, 42, promptB.length, 5000);
    for (const t of [40, 41]) assert.equal((pool.v as Float32Array[])[1]![b.slotOffset(t)], -(1000 + t), `slot ${t} came from the first prefill`);
    for (const t of [42, 43]) {
      assert.equal((pool.k as Float32Array[])[0]![a.slotOffset(t)], 1000 + t, `the first sequence's slot ${t} is untouched`);
      assert.equal((pool.k as Float32Array[])[0]![b.slotOffset(t)], 5000 + t);
    }
    // Nothing agrees: no block is adopted, and none is retained.
    const used = pool.usedBlocks;
    const c = new PagedSequence(pool, prefixes);
    assert.equal(c.adoptPrefix([99, 98, 97]), 0);
    assert.equal(c.table.length, 0);
    assert.equal(pool.usedBlocks, used);
    for (const s of [a, b]) s.free();
    while (prefixes.evictOne());
    assert.equal(pool.usedBlocks, 0, 'every block went back, and the cache forgot them');
    assert.equal(new PagedSequence(pool, prefixes).adoptPrefix(promptB), 0);
  });

  it('copies a shared block before a diverging sequence writes into it (copy-on-write)', () => {
    const pool = new KVBlockPool(shape, 4, 8);
    const a = new PagedSequence(pool);
    a.reserve(6);
    write(pool, a, 0, 6, 100);
    const b = a.fork();
    assert.equal(pool.refCount(a.table[1]!), 2);
    b.reserve(1);
    assert.notEqual(b.table[1], a.table[1], 'b got its own copy of the half-full block');
    assert.equal(b.table[0], a.table[0], 'the full block stays shared');
    write(pool, b, 6, 7, 500);
    for (const t of [4, 5]) assert.equal((pool.k as Float32Array[])[1]![b.slotOffset(t)], (pool.k as Float32Array[])[1]![a.slotOffset(t)], `slot ${t} copied`);
    a.reserve(1);
    write(pool, a, 6, 7, 100);
    assert.equal((pool.k as Float32Array[])[0]![a.slotOffset(6)], 106);
    assert.equal((pool.k as Float32Array[])[0]![b.slotOffset(6)], 506, 'the other sequence kept its own token');
    a.free();
    b.free();
    assert.equal(pool.usedBlocks, 0, 'every block went back');
  });

  it('evicts the least recently used unreferenced prefix when the pool runs out', () => {
    const pool = new KVBlockPool(shape, 4, 4);
    const prefixes = new PrefixCache(pool);
    const run = (prompt: number[]) => {
      const s = new PagedSequence(pool, prefixes);
      const cached = s.adoptPrefix(prompt);
      s.reserve(prompt.length - cached);
      write(pool, s, cached, prompt.length, 0);
      s.publishPrefix(prompt);
      s.free();
      return cached;
    };
    const [p1, p2] = [[1, 1, 1, 1, 9], [2, 2, 2, 2, 9]];
    run(p1);
    run(p2);
    assert.equal(run(p1), 4, 'p1 is cached; using it makes p2 the least recent');
    assert.equal(prefixes.size, 2);
    // A sequence needing 3 of the 4 blocks evicts one: p2, the least recently used.
    const big = new PagedSequence(pool, prefixes);
    big.reserve(9);
    assert.equal(prefixes.size, 1);
    const probe = new PagedSequence(pool, prefixes);
    assert.equal(probe.adoptPrefix(p2), 0, 'p2 was evicted');
    assert.equal(probe.adoptPrefix(p1), 4, 'p1 is still cached');
    // Held blocks are never evicted: with p1 in use, a fourth block cannot be found.
    big.length = 9;
    assert.throws(() => big.reserve(4), KVPoolFullError);
  });

  it('a pool too small for one request fails with a user error naming its size, not a crash', () => {
    const pool = new KVBlockPool(shape, 4, 2);
    const s = new PagedSequence(pool);
    assert.throws(() => s.reserve(9), (e: Error) => e instanceof KVPoolFullError && e instanceof UserError && /2 blocks of 4 tokens \(8 tokens\)/.test(e.message));
  });
});
