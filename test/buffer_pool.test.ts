import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { takeZeroed, withScratch } from '../src/tensor/buffer_pool.js';

describe('scratch scopes recycle an inference pass\'s buffers', () => {
  it('gives back what a scope took, zeroed on reuse, but never the array its result lives in', () => {
    const n = 5000; // above the small-buffer slabs
    let first: Float32Array | null = null;
    const result = withScratch(() => {
      first = takeZeroed(n);
      first.fill(7);
      new Float32Array(first.buffer).fill(7); // past the view too: reuse must still zero what it hands out
      const out = takeZeroed(n);
      out.fill(3);
      return out;
    });
    const again = withScratch(() => {
      const a = takeZeroed(n);
      const b = takeZeroed(n);
      assert.ok(a.buffer === first!.buffer || b.buffer === first!.buffer, 'the intermediate buffer is handed out again');
      assert.ok(a.buffer !== result.buffer && b.buffer !== result.buffer, 'the returned array is not recycled while its caller holds it');
      assert.equal(a.length, n, 'a view of exactly the length asked for');
      assert.ok(a.every((v) => v === 0) && b.every((v) => v === 0), 'recycled buffers come back zeroed');
      return 0;
    });
    assert.equal(again, 0);
    assert.ok(result.every((v) => v === 3), 'the result is untouched by later passes');
  });

  it('a nested result passes to the enclosing scope, which recycles it when it ends; sizes of one class share buffers', () => {
    const n = 6000;
    let inner: Float32Array | null = null;
    withScratch(() => {
      inner = withScratch(() => takeZeroed(n));
      return null;
    });
    const next = withScratch(() => takeZeroed(n - 100)); // another row count, the same capacity class
    assert.equal(next.buffer, inner!.buffer, 'the inner result was recycled by the outer scope');
  });
});
