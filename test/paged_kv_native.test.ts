import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PagedKvDims, PagedKvSequence } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native): native paged attention tests skipped';
const native = addon ? createNativeBackend(addon) : null;
const isas = addon ? [...new Set(['portable', addon.detectedIsa()])] : ['none'];
after(() => addon?.setIsa(addon.detectedIsa()));

/** Native attentionPaged against the js reference on the same inputs; returns native's output. */
function agree(q: Float32Array, kPool: Float32Array, vPool: Float32Array, seqs: PagedKvSequence[], d: PagedKvDims, label: string): Float32Array {
  const want = new Float32Array(q.length);
  const got = new Float32Array(q.length);
  jsBackend.attentionPaged(q, want, kPool, vPool, seqs, d);
  native!.attentionPaged(q, got, kPool, vPool, seqs, d);
  assertClose(got, want, 2e-5, label);
  return got;
}

for (const isa of isas) {
  describe(`native paged attention agrees with the js reference (${isa} path)`, { skip }, () => {
    before(() => assert.ok(addon!.setIsa(isa)));

    it('random block tables, ragged lengths, prompts beside decode rows, blocks shared between sequences, grouped KV heads, serial and threaded', () => {
      const rng = new Rng(77);
      const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      for (const [H, Hkv, D, blockTokens, shapes] of [
        [2, 2, 4, 4, [[3, 1], [0, 5], [7, 1]]],
        [4, 2, 8, 16, [[40, 1], [0, 70], [33, 3], [16, 1], [1, 1]]],
        [6, 1, 32, 16, [[300, 1], [250, 1], [17, 40], [299, 1], [280, 2], [301, 1]]],
        [4, 4, 64, 8, [[0, 130], [129, 1], [64, 65]]],
      ] as const) {
        const Ckv = Hkv * D;
        const need = shapes.map(([past, Tq]) => Math.ceil((past + Tq) / blockTokens));
        const blocks = need.reduce((a, b) => a + b, 0) + 3;
        const kPool = rand(blocks * blockTokens * Ckv);
        const vPool = rand(blocks * blockTokens * Ckv);
        // Shuffled block ids; the second sequence (when long enough) shares the first's first block, as a common prefix would.
        const ids = Array.from({ length: blocks }, (_, i) => i).sort(() => rng.random() - 0.5);
        let [at, rows] = [0, 0];
        const seqs = shapes.map(([past, Tq], i) => {
          const table = ids.slice(at, (at += need[i]!));
          const seq = { table, past, Tq, offset: rows };
          rows += Tq;
          return seq;
        });
        if (seqs.length > 1 && seqs[1]!.table.length > 1 && seqs[0]!.table.length > 0) seqs[1]!.table[0] = seqs[0]!.table[0]!;
        agree(rand(rows * H * D), kPool, vPool, seqs, { nHead: H, nKvHead: Hkv, headDim: D, scale: 1 / Math.sqrt(D), blockTokens }, `H=${H}/${Hkv} D=${D} blocks of ${blockTokens} shapes=${JSON.stringify(shapes)}`);
      }
    });

    it('prompts that share leading blocks (a common system prompt) are computed together: same result as one by one', () => {
      const rng = new Rng(78);
      const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      for (const [H, Hkv, D, blockTokens] of [[4, 4, 32, 16], [6, 2, 8, 4], [2, 1, 16, 8]] as const) {
        const Ckv = Hkv * D;
        const blocks = 200;
        const kPool = rand(blocks * blockTokens * Ckv);
        const vPool = rand(blocks * blockTokens * Ckv);
        const prefix = [7, 3, 11, 5, 19, 2, 13, 17]; // shared blocks, not in order
        let next = 40;
        const own = (n: number) => Array.from({ length: n }, () => next++);
        // [blocks of the prefix it shares, past, Tq]: a group whose members share 8, 8, 5 and 8 blocks (so 5 in
        // common), with different pasts; a decode row and a prompt with nothing cached beside them; a prompt
        // sharing only the first block; one whose past is shorter than its shared blocks (it sees fewer of them).
        const shapes: Array<[number, number, number]> = [[8, 8 * blockTokens + 3, 5], [8, 8 * blockTokens, 2], [5, 5 * blockTokens + 1, 9], [8, 6 * blockTokens - 1, 4], [8, 8 * blockTokens + 2, 1], [0, 0, 6], [1, blockTokens + 2, 3], [8, 8 * blockTokens + 7, 12]];
        let rows = 0;
        const seqs = shapes.map(([shared, past, Tq]) => {
          const total = Math.ceil((past + Tq) / blockTokens);
          const table = [...prefix.slice(0, Math.min(shared, total)), ...own(Math.max(0, total - shared))];
          const seq = { table, past, Tq, offset: rows };
          rows += Tq;
          return seq;
        });
        const q = rand(rows * H * D);
        const d = { nHead: H, nKvHead: Hkv, headDim: D, scale: 1 / Math.sqrt(D), blockTokens };
        const got = agree(q, kPool, vPool, seqs, d, `shared prompts H=${H}/${Hkv} D=${D} blocks of ${blockTokens}`);
        // Each alone (no group can form) gives the same rows.
        const alone = new Float32Array(q.length);
        for (const s of seqs) native!.attentionPaged(q, alone, kPool, vPool, [s], d);
        assertClose(got, alone, 2e-5, `shared prompts against one by one H=${H}/${Hkv}`);
      }
    });

    it('refuses a block table too short for its slots', () => {
      const d = { nHead: 1, nKvHead: 1, headDim: 4, scale: 0.5, blockTokens: 4 };
      assert.throws(() => native!.attentionPaged(new Float32Array(4), new Float32Array(4), new Float32Array(64), new Float32Array(64), [{ table: [0], past: 4, Tq: 1, offset: 0 }], d), /1 blocks for 5 slots/);
    });
  });
}

describe('native hugePageArray (the KV pool’s memory)', { skip }, () => {
  it('is zeroed, writable end to end, the length asked, and independent of other arrays', () => {
    const n = 3 * 2 ** 19 + 5; // not a whole number of 2 MB pages
    const a = native!.hugePageArray!(n);
    const b = native!.hugePageArray!(n);
    assert.equal(a.length, n);
    for (const i of [0, 1, 2 ** 19, n - 1]) assert.equal(a[i], 0);
    a[0] = 1.5;
    a[n - 1] = -2.5;
    a.fill(3, 1000, 2000);
    assert.deepEqual([a[0], a[n - 1], a[1500], b[0], b[1500], b[n - 1]], [1.5, -2.5, 3, 0, 0, 0]);
  });

  it('KVBlockPool takes its arrays from the current backend and still starts zeroed', async () => {
    const { registerBackend, setBackend, backend } = await import('../src/backend/index.js');
    const { KVBlockPool } = await import('../src/generate/paged_kv/block_pool.js');
    const before = backend().name;
    registerBackend(native!);
    setBackend(native!.name);
    try {
      const pool = new KVBlockPool({ n_layer: 2, n_head: 2, n_embd: 8, block_size: 64 }, 4, 6);
      assert.equal(pool.k.length, 2);
      for (const arr of [...(pool.k as Float32Array[]), ...(pool.v as Float32Array[])]) {
        assert.equal(arr.length, 6 * 4 * 8);
        assert.ok(arr.every((x) => x === 0));
      }
      (pool.k as Float32Array[])[1]!.fill(7, pool.offset(2, 0), pool.offset(3, 0));
      assert.equal((pool.k as Float32Array[])[0]![pool.offset(2, 0)], 0);
    } finally {
      setBackend(before);
    }
  });
});
