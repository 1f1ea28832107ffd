import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import type { DecoderLM } from '../src/models/causal_lm.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { backward, noGrad, topologicalOrder } from '../src/tensor/autograd.js';
import { chunkedCrossEntropy } from '../src/tensor/chunked_cross_entropy.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import { linear } from '../src/tensor/ops/linear.js';
import { withPrecision, type Precision } from '../src/tensor/precision.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

const addon = loadAddon();
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

/**
 * Chunked and plain heads do the same products on the same numbers; only
 * dW's sum over rows (and the loss's over chunks) is split differently. So:
 * equal within 1e-6 of the largest reference value (FP32 rounding of a few
 * dozen terms), and bit-identical where there is one chunk and the upstream gradient is 1.
 */
const TOL = 1e-6;

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = TOL): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    assert.ok(d <= tol * max, `${what}[${i}]: ${got[i]} vs ${want[i]} (|Δ| ${d} > ${tol} × ${max})`);
  }
}

function assertIdentical(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  const a = Array.from(got);
  const b = Array.from(want);
  const i = a.findIndex((v, j) => !Object.is(v, b[j]));
  assert.equal(i, -1, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const randn = (rng: Rng, n: number, std: number) => Float32Array.from({ length: n }, () => rng.normal() * std);

/** h [N, C], a head W [V, C] (and bias), targets with every fifth one ignored (−1); gradients for an upstream g, added onto existing ones. */
function headLoss(chunkRows: number | null, o: { N: number; C: number; V: number; bias: boolean; g: number; precision: Precision }) {
  const rng = new Rng(3);
  const h = new Tensor(randn(rng, o.N * o.C, 1), [o.N, o.C], true);
  const W = new Tensor(randn(rng, o.V * o.C, 0.5), [o.V, o.C], true);
  const b = o.bias ? new Tensor(randn(rng, o.V, 0.1), [o.V], true) : null;
  const targets = Int32Array.from({ length: o.N }, (_, i) => (i % 5 === 3 ? -1 : rng.int(o.V)));
  // A gradient already there (another micro-batch, the tied embedding's): contributions must add to it.
  W.grad = randn(rng, o.V * o.C, 0.01);
  const loss = withPrecision(o.precision, () =>
    chunkRows === null ? crossEntropy(linear(h, W, b), targets) : chunkedCrossEntropy(h, W, b, targets, { chunkRows }),
  );
  const value = loss.item();
  backward(loss, Float32Array.of(o.g));
  return { loss: value, dh: Array.from(h.grad!), dW: Array.from(W.grad!), db: b ? Array.from(b.grad!) : [] };
}

for (const backendName of addon ? ['js', 'native'] : ['js']) {
  describe(`chunked head + cross-entropy equals the plain one (${backendName})`, () => {
    const shape = { N: 37, C: 12, V: 29 };
    for (const precision of ['fp32', 'bf16'] as const) {
      for (const chunk of [37, 64, 8, 5, 1]) {
        for (const bias of [false, true]) {
          // In bf16 the plain head rounds g·dlogits to bf16, the chunked one dlogits (then scales by g): the same only
          // for g a power of two; for other g they differ by bf16's own rounding (2⁻⁸ relative), not by the chunking.
          const g = precision === 'bf16' ? 0.5 : 0.7;
          it(`${precision}, ${chunk}-row chunks of 37, ${bias ? 'with' : 'no'} bias, upstream ${g}`, () => {
            setBackend(backendName);
            const o = { ...shape, bias, g, precision };
            const want = headLoss(null, o);
            const got = headLoss(chunk, o);
            assertClose([got.loss], [want.loss], 'loss');
            assertClose(got.dh, want.dh, 'dh');
            assertClose(got.dW, want.dW, 'dW');
            assertClose(got.db, want.db, 'db');
            assert.ok(want.dh.some((v) => v !== 0) && want.dW.some((v) => v !== 0));
          });
        }
      }
    }

    it('one chunk and an upstream gradient of 1: bit-identical loss and dh, dW within rounding', () => {
      setBackend(backendName);
      const o = { ...shape, bias: true, g: 1, precision: 'fp32' as const };
      const want = headLoss(null, o);
      const got = headLoss(512, o);
      assert.equal(got.loss, want.loss);
      assertIdentical(got.dh, want.dh, 'dh');
      assertClose(got.dW, want.dW, 'dW');
      assertIdentical(got.db, want.db, 'db');
    });

    it('every target ignored: loss 0, no gradient (as crossEntropy)', () => {
      setBackend(backendName);
      const h = new Tensor(randn(new Rng(1), 6 * 4, 1), [6, 4], true);
      const W = new Tensor(randn(new Rng(2), 7 * 4, 1), [7, 4], true);
      const loss = chunkedCrossEntropy(h, W, null, new Int32Array(6).fill(-1), { chunkRows: 4 });
      assert.equal(loss.item(), 0);
      backward(loss);
      assert.ok(!h.grad || h.grad.every((v) => v === 0));
      assert.ok(!W.grad || W.grad.every((v) => v === 0));
    });

    it('checks its targets and shapes', () => {
      setBackend(backendName);
      const h = Tensor.zeros([3, 4], true);
      const W = Tensor.zeros([5, 4], true);
      assert.throws(() => chunkedCrossEntropy(h, W, null, Int32Array.of(0, 1)), /2 targets for 3 rows/);
      assert.throws(() => chunkedCrossEntropy(h, W, null, Int32Array.of(0, 1, 5)), /outside vocabulary of 5/);
      assert.throws(() => chunkedCrossEntropy(h, Tensor.zeros([5, 3]), null, Int32Array.of(0, 1, 2)), /do not match/);
      assert.throws(() => chunkedCrossEntropy(h, W, null, Int32Array.of(0, 1, 2), { chunkRows: 0 }), /positive integer/);
    });
  });
}

const gpt = () => new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 12, vocab_size: 23, dropout: 0.1, bias: true }), new Rng(5));
const llama = (tied: boolean) => () =>
  new Llama(
    parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 16, head_dim: 4, intermediate_size: 24, vocab_size: 23, block_size: 12, dropout: 0.1, tie_word_embeddings: tied }),
    new Rng(5),
  );

/** Two micro-batches through a recomputed model (upstream 0.5, gradients accumulating), with the head chunked (chunkRows) or plain (0). */
function train(model: DecoderLM, chunkRows: number, precision: Precision) {
  model.recompute = true;
  model.headChunkRows = chunkRows;
  model.train();
  const data = new Rng(9);
  const [B, T] = [3, 12];
  const losses: number[] = [];
  for (let micro = 0; micro < 2; micro++) {
    const ids = Int32Array.from({ length: B * T }, () => data.int(23));
    const targets = Int32Array.from({ length: B * T }, (_, i) => (i % 7 === 2 ? -1 : data.int(23)));
    const out = withPrecision(precision, () => model.forward(ids, [B, T], targets));
    const ops = topologicalOrder(out.loss!).map((t) => t.gradFn?.name);
    assert.equal(ops.includes('chunkedCrossEntropy'), chunkRows > 0);
    losses.push(out.loss!.item());
    backward(out.loss!, Float32Array.of(0.5), { freeActivations: true });
  }
  return { losses, grads: model.namedParameters().map(([name, p]) => [name, Array.from(p.grad!)] as const) };
}

for (const backendName of addon ? ['js', 'native'] : ['js']) {
  describe(`a recomputed model with the chunked head trains as with the plain one (${backendName})`, () => {
    for (const [family, make] of [['GPT (tied head)', gpt], ['Llama (own head)', llama(false)], ['Llama (tied head)', llama(true)]] as const) {
      for (const precision of ['fp32', 'bf16'] as const) {
        it(`${family}, ${precision}, 5-row chunks of 36`, () => {
          setBackend(backendName);
          const plain = train(make(), 0, precision);
          const chunked = train(make(), 5, precision);
          assertClose(chunked.losses, plain.losses, 'losses');
          for (let i = 0; i < plain.grads.length; i++) {
            const [name, want] = plain.grads[i]!;
            assertClose(chunked.grads[i]![1], want, name);
          }
        });
      }
    }

    it('the logits of a chunked forward pass throw when read; keepLogits and inference give real ones', () => {
      setBackend(backendName);
      const model = gpt().eval(); // no dropout: the two passes must see the same network
      model.recompute = true;
      const ids = Int32Array.from({ length: 24 }, (_, i) => i % 23);
      const { logits, loss } = model.forward(ids, [2, 12], ids);
      assert.ok(loss);
      assert.deepEqual(logits.shape, [2, 12, 23]);
      assert.throws(() => logits.data, /logits \[2,12,23\] were not computed.*headChunkRows = 0.*keepLogits/);
      assert.throws(() => logits.size, /were not computed/);
      const kept = model.forward(ids, [2, 12], ids, { keepLogits: true });
      assert.equal(kept.logits.data.length, 2 * 12 * 23);
      assertClose([kept.loss!.item()], [loss.item()], 'loss beside kept logits');
      assert.equal(noGrad(() => model.forward(ids, [2, 12])).logits.size, 2 * 12 * 23);
    });
  });
}
