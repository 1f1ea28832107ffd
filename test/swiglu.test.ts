import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { backward } from '../src/tensor/autograd.js';
import { mul, silu } from '../src/tensor/ops/elementwise.js';
import { swiglu } from '../src/tensor/ops/swiglu.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const rng = new Rng(5);
const rand = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 89 === 0 ? 8 : 1) * rng.normal()); // some large |g|: σ saturates
const plain = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** Values and gradients (w.r.t. gate and up) of f(gate, up)·w summed, under the current backend. */
function valueAndGrads(f: (g: Tensor, u: Tensor) => Tensor, g: Float32Array, u: Float32Array, w: Float32Array, shape: number[]) {
  const gate = new Tensor(g.slice(), shape, true);
  const up = new Tensor(u.slice(), shape, true);
  const out = f(gate, up);
  backward(out, w);
  return [out.data, gate.grad!, up.grad!];
}

describe('swiglu (fused silu(gate) ∘ up)', () => {
  after(() => setBackend('js'));

  it('js: equals silu(gate) ∘ up composed, values and gradients', () => {
    setBackend('js');
    const shape = [3, 50];
    const [g, u, w] = [rand(150), rand(150), rand(150)];
    const fused = valueAndGrads(swiglu, g, u, w, shape);
    const composed = valueAndGrads((a, b) => mul(silu(a), b), g, u, w, shape);
    fused.forEach((t, i) => assertClose(t, composed[i]!, 1e-6, ['value', 'd gate', 'd up'][i]!));
  });

  it('js: the gradient matches finite differences', () => {
    setBackend('js');
    const [g, u, w] = [plain(8), plain(8), plain(8)];
    const [, dg, du] = valueAndGrads(swiglu, g, u, w, [8]);
    const loss = (gg: Float32Array, uu: Float32Array) => swiglu(new Tensor(gg, [8]), new Tensor(uu, [8])).data.reduce((s, v, i) => s + v * w[i]!, 0);
    const h = 1e-2;
    for (let i = 0; i < 8; i++) {
      const bump = (a: Float32Array, d: number) => Float32Array.from(a, (v, j) => (j === i ? v + d : v));
      const near = (fd: number, got: number) => Math.abs(fd - got) < 2e-3 * Math.max(1, Math.abs(got));
      assert.ok(near((loss(bump(g, h), u) - loss(bump(g, -h), u)) / (2 * h), dg[i]!), `d gate ${i}`);
      assert.ok(near((loss(g, bump(u, h)) - loss(g, bump(u, -h))) / (2 * h), du[i]!), `d up ${i}`);
    }
  });

  it('only the inputs that want a gradient get one', () => {
    setBackend('js');
    const gate = new Tensor(rand(4), [4], true);
    const up = new Tensor(rand(4), [4], false);
    backward(swiglu(gate, up), rand(4));
    assert.ok(gate.grad);
    assert.equal(up.grad, null);
  });

  it('refuses inputs of different shapes', () => assert.throws(() => swiglu(Tensor.zeros([2, 3]), Tensor.zeros([3, 2])), /gate \[2,3\] and up \[3,2\] differ/));
});

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native): native swiglu tests skipped';
const native: Backend | null = addon ? createNativeBackend(addon) : null;
if (native) registerBackend(native);
const ISA_ORDER = ['portable', 'avx2', 'avx512'];
const isas = addon ? ISA_ORDER.slice(0, ISA_ORDER.indexOf(addon.detectedIsa()) + 1) : ['none'];

for (const isa of isas) {
  describe(`native swiglu agrees with the js reference (${isa} path)`, { skip }, () => {
    before(() => assert.ok(addon!.setIsa(isa)));
    after(() => addon?.setIsa(addon.detectedIsa()));
    // 40 001 elements: past the kernels' threading grain (16 384), and not a multiple of any vector width.
    const n = 40_001;
    const [g, u, dy, junk] = [rand(n), rand(n), rand(n), rand(n)];
    for (const accumulate of [false, true]) {
      it(`forward, and backward into both, one or the other (accumulate ${accumulate})`, () => {
        const run = (b: Backend) => {
          const out = new Float32Array(n);
          b.swigluForward(g, u, out);
          const [dg, du, dgOnly, duOnly] = [junk.slice(), junk.slice(), junk.slice(), junk.slice()];
          b.swigluBackward(g, u, dy, dg, du, accumulate, accumulate);
          b.swigluBackward(g, u, dy, dgOnly, null, accumulate, false);
          b.swigluBackward(g, u, dy, null, duOnly, false, accumulate);
          return [out, dg, du, dgOnly, duOnly];
        };
        const want = run(jsBackend);
        // Relative: a large gate times a large up gives values in the hundreds, where float32 steps are 1e-5.
        run(native!).forEach((t, i) => t.forEach((v, j) => {
          const w = want[i]![j]!;
          assert.ok(Math.abs(v - w) <= 1e-5 * Math.max(1, Math.abs(w)), `${['out', 'd gate', 'd up', 'd gate alone', 'd up alone'][i]} element ${j}: ${v} vs ${w}`);
        }));
      });
    }
  });
}
