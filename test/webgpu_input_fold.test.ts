import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { gemmArgs, mat, matT } from '../src/backend/gemm_args.js';
import { setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { quantizeMatrix } from '../src/backend/quantized_matrix.js';
import type { DeviceArray } from '../src/backend/storage.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { MAX_FOLD_WORKGROUPS, setFoldRows } from '../src/backend/webgpu/kernels/input_fold.js';
import { layerNorm } from '../src/tensor/ops/layernorm.js';
import { ropeAngles } from '../src/tensor/ops/rope.js';
import { backward } from '../src/tensor/autograd.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { logitsCached } from '../src/generate/cached_forward.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { quantizeMatrices, useQuantizedMatrices } from '../src/nn/block_quantized.js';
import { moveToBackend } from '../src/nn/placement.js';
import { tinyLlama } from './llama_fixture.js';
import { assertNear, readGrad, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * A decode step's norm folded into the product that reads it
 * (kernels/input_fold.ts): a LayerNorm or RMSNorm of at most 8 rows is
 * deferred, and the skinny fp32 product, the int8 product and the GGUF
 * activation quantizer normalise its input as they read it. Each is checked
 * against js's norm then product, with the dispatches counted (the norm's
 * own kernel must not run); then every other way of touching the normed
 * rows, which must record the norm first. SwiftShader without a GPU; skips
 * as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu norm folding tests');
after(() => setBackend('js'));

const rng = new Rng(53);
const rand = (n: number, scale = 1, shift = 0) => Float32Array.from({ length: n }, () => shift + scale * rng.normal());

type Kind = 'layer' | 'rms';

interface Norm {
  kind: Kind;
  weight: boolean;
  bias: boolean;
}

/** js's norm of x[rows, cols] (weight w, bias b where the case has them). */
function jsNorm(n: Norm, x: Float32Array, w: Float32Array, b: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const stats = new Float32Array(rows);
  if (n.kind === 'layer') jsBackend.layerNormForward(x, n.weight ? w : null, n.bias ? b : null, out, new Float32Array(rows), stats, rows, cols, 1e-5);
  else jsBackend.rmsNormForward(x, n.weight ? w : null, out, stats, rows, cols, 1e-6);
  return out;
}

/**
 * The same norm recorded on webgpu (deferred when it is small enough), into
 * a fresh output; `norms` collects its storages so that a test can release
 * them (a deferred norm whose outputs are never released stays pending).
 */
function gpuNorm(be: Backend<DeviceArray>, n: Norm, x: DeviceArray, w: DeviceArray, b: DeviceArray, rows: number, cols: number): DeviceArray {
  const dev = be.device!;
  const out = dev.alloc(rows * cols, false);
  const stat = [dev.alloc(rows, false), dev.alloc(rows, false)] as const;
  made.push(out, ...stat);
  if (n.kind === 'layer') be.layerNormForward(x, n.weight ? w : null, n.bias ? b : null, out, stat[0], stat[1], rows, cols, 1e-5);
  else be.rmsNormForward(x, n.weight ? w : null, out, stat[0], rows, cols, 1e-6);
  return out;
}

/** The norms' storages made by the running test, released after it (dropping any norm still deferred). */
const made: DeviceArray[] = [];
afterEach(async () => {
  const dev = openedWebGpu() && (await webgpu()).device!;
  if (dev) for (const s of made.splice(0)) dev.release(s);
  setBackend('js');
});

const NORMS: Norm[] = [
  { kind: 'layer', weight: true, bias: true },
  { kind: 'layer', weight: false, bias: false },
  { kind: 'rms', weight: true, bias: false },
];

const stats = () => ({ ...openedWebGpu()!.stats });

describe('norms folded into the decode products on webgpu, against js', { skip }, () => {
  // 64 wide: vec4 rows; 67: scalar rows. 37 columns: 8 lanes a column; 300 wide rows: a workgroup a column.
  for (const n of NORMS) {
    for (const [rows, cols, N] of [[1, 64, 37], [3, 67, 37], [8, 300, 20]] as const) {
      it(`${n.kind} norm (weight ${n.weight}, bias ${n.bias}) → fp32 product, ${rows} × ${cols} → ${N}: one dispatch`, async () => {
        // A mean far from zero: the statistics must subtract it (LayerNorm), not cancel.
        const [x, w, b, W, bias] = [rand(rows * cols, 2, 5), rand(cols), rand(cols), rand(N * cols), rand(N)];
        const h = jsNorm(n, x, w, b, rows, cols);
        const want = new Float32Array(rows * N);
        jsBackend.gemm(gemmArgs({ M: rows, N, K: cols }, mat(want, N), mat(h, cols), matT(W, cols), { bias }));
        const be = await webgpu();
        try {
          const dev = be.device!;
          const [gx, gw, gb, gW, gbias] = [x, w, b, W, bias].map((a) => dev.upload(a));
          const out = dev.alloc(rows * N, false);
          const s0 = stats();
          const normed = gpuNorm(be, n, gx!, gw!, gb!, rows, cols);
          be.gemm(gemmArgs({ M: rows, N, K: cols }, mat(out, N), mat(normed, cols), matT(gW!, cols), { bias: gbias }));
          const s1 = stats();
          assert.equal(s1.dispatches - s0.dispatches, 1, 'the product alone');
          assertNear(await dev.read(out), want, 1e-4, 1e-4, 'folded product');
          assert.equal(stats().deferredRun - s0.deferredRun, 0, 'the norm never recorded');
        } finally {
          setBackend('js');
        }
      });
    }
  }

  for (const n of NORMS) {
    it(`${n.kind} norm (weight ${n.weight}, bias ${n.bias}) → int8 product, with a GELU and an addend`, async () => {
      const [rows, K, N] = [2, 96, 33];
      const [x, w, b, bias, addend] = [rand(rows * K, 1, -3), rand(K), rand(K), rand(N), rand(rows * N)];
      const wq = Int8Array.from({ length: N * K }, () => Math.round(rng.normal() * 40));
      const scale = Float32Array.from({ length: N }, () => 0.01 + 0.01 * Math.abs(rng.normal()));
      const want = new Float32Array(rows * N);
      jsBackend.linearInt8(jsNorm(n, x, w, b, rows, K), rows, K, wq, scale, bias, want, N, { activation: 'gelu', addend });
      const be = await webgpu();
      try {
        const dev = be.device!;
        const [gx, gw, gb, gbias, gadd] = [x, w, b, bias, addend].map((a) => dev.upload(a));
        const out = dev.alloc(rows * N, false);
        const s0 = stats();
        be.linearInt8(gpuNorm(be, n, gx!, gw!, gb!, rows, K), rows, K, wq, scale, gbias!, out, N, { activation: 'gelu', addend: gadd! });
        assert.equal(stats().dispatches - s0.dispatches, 1, 'the product alone');
        assertNear(await dev.read(out), want, 1e-4, 1e-4, 'folded int8 product');
      } finally {
        setBackend('js');
      }
    });
  }

  it(`a reader of more than ${MAX_FOLD_WORKGROUPS} workgroups (a vocabulary head) leaves the norm its own dispatch`, async () => {
    // K 64: 32 lanes an output, 8 outputs a workgroup, so 33 000 outputs take 4 125 workgroups.
    const [rows, K, N] = [1, 64, 33000];
    const n: Norm = { kind: 'layer', weight: true, bias: true };
    const [x, w, b] = [rand(rows * K), rand(K), rand(K)];
    const wq = Int8Array.from({ length: N * K }, (_, i) => (i * 7919) % 255 - 127);
    const scale = new Float32Array(N).fill(0.01);
    const want = new Float32Array(rows * N);
    jsBackend.linearInt8(jsNorm(n, x, w, b, rows, K), rows, K, wq, scale, null, want, N);
    const be = await webgpu();
    try {
      const dev = be.device!;
      const out = dev.alloc(rows * N, false);
      const s0 = stats();
      be.linearInt8(gpuNorm(be, n, dev.upload(x), dev.upload(w), dev.upload(b), rows, K), rows, K, wq, scale, null, out, N);
      assert.equal(stats().dispatches - s0.dispatches, 2, 'the norm, then the product');
      assert.equal(stats().deferredRun - s0.deferredRun, 1);
      assertNear(await dev.read(out), want, 1e-4, 1e-4, 'product of the recorded norm');
    } finally {
      setBackend('js');
    }
  });

  for (const type of ['q8_0', 'q4_0'] as const) {
    for (const n of NORMS) {
      it(`${n.kind} norm (weight ${n.weight}, bias ${n.bias}) → ${type} products: quantized once from the norm's input, for two products`, async () => {
        const [rows, K, N] = [3, 96, 21];
        const [x, w, b] = [rand(rows * K, 1, 2), rand(K), rand(K)];
        const [w1, w2] = [quantizeMatrix(type, rand(N * K), N, K), quantizeMatrix(type, rand(N * K), N, K)];
        const h = jsNorm(n, x, w, b, rows, K);
        const [want1, want2] = [new Float32Array(rows * N), new Float32Array(rows * N)];
        jsBackend.linearQuantized(h, rows, w1, null, want1);
        jsBackend.linearQuantized(h, rows, w2, null, want2);
        const be = await webgpu();
        try {
          const dev = be.device!;
          const [gx, gw, gb] = [x, w, b].map((a) => dev.upload(a));
          const [o1, o2] = [dev.alloc(rows * N, false), dev.alloc(rows * N, false)];
          const s0 = stats();
          const normed = gpuNorm(be, n, gx!, gw!, gb!, rows, K);
          be.linearQuantized(normed, rows, w1, null, o1);
          be.linearQuantized(normed, rows, w2, null, o2);
          assert.equal(stats().dispatches - s0.dispatches, 3, 'one quantize (the norm folded in), two products');
          // Within one activation quant step of js, as webgpu_quantized.test.ts allows.
          for (const [got, want] of [[o1, want1], [o2, want2]] as const) {
            assertNear(await dev.read(got), want, 1e-5, 2e-3 * Math.max(...want.map(Math.abs)), type);
          }
        } finally {
          setBackend('js');
        }
      });
    }
  }
});

describe("SwiGLU's gated product folded into the down projection on webgpu, against js", { skip }, () => {
  /** silu(gate)·up on js, and the same deferred on webgpu from gate and up (two views of one buffer, as a fused gate·up product stores them). */
  const inputs = async (rows: number, K: number) => {
    const [gate, up] = [rand(rows * K, 2), rand(rows * K)];
    const h = new Float32Array(rows * K);
    jsBackend.swigluForward(gate, up, h);
    const be = await webgpu();
    const dev = be.device!;
    const both = dev.upload(Float32Array.from([...gate, ...up]));
    const out = dev.alloc(rows * K, false);
    made.push(out);
    return { h, be, dev, gpuH: () => (be.swigluForward(dev.view(both, 0, rows * K), dev.view(both, rows * K, rows * K), out), out) };
  };

  for (const [rows, K, N] of [[1, 64, 37], [3, 67, 37], [8, 300, 20]] as const) {
    it(`→ fp32 product, ${rows} × ${K} → ${N}: one dispatch`, async () => {
      const { h, be, dev, gpuH } = await inputs(rows, K);
      const W = rand(N * K);
      const want = new Float32Array(rows * N);
      jsBackend.gemm(gemmArgs({ M: rows, N, K }, mat(want, N), mat(h, K), matT(W, K)));
      try {
        const [gW, out] = [dev.upload(W), dev.alloc(rows * N, false)];
        const s0 = stats();
        be.gemm(gemmArgs({ M: rows, N, K }, mat(out, N), mat(gpuH(), K), matT(gW, K)));
        assert.equal(stats().dispatches - s0.dispatches, 1, 'the product alone');
        assertNear(await dev.read(out), want, 1e-4, 1e-4, 'folded product');
      } finally {
        setBackend('js');
      }
    });
  }

  it('→ int8 product with an addend: one dispatch', async () => {
    const [rows, K, N] = [2, 96, 33];
    const { h, be, dev, gpuH } = await inputs(rows, K);
    const wq = Int8Array.from({ length: N * K }, () => Math.round(rng.normal() * 40));
    const scale = new Float32Array(N).fill(0.02);
    const addend = rand(rows * N);
    const want = new Float32Array(rows * N);
    jsBackend.linearInt8(h, rows, K, wq, scale, null, want, N, { addend });
    try {
      const out = dev.alloc(rows * N, false);
      const gadd = dev.upload(addend);
      const s0 = stats();
      be.linearInt8(gpuH(), rows, K, wq, scale, null, out, N, { addend: gadd });
      assert.equal(stats().dispatches - s0.dispatches, 1, 'the product alone');
      assertNear(await dev.read(out), want, 1e-4, 1e-4, 'folded int8 product');
    } finally {
      setBackend('js');
    }
  });

  it('→ q4_0 product: quantized from gate and up', async () => {
    const [rows, K, N] = [2, 128, 19];
    const { h, be, dev, gpuH } = await inputs(rows, K);
    const w = quantizeMatrix('q4_0', rand(N * K), N, K);
    const want = new Float32Array(rows * N);
    jsBackend.linearQuantized(h, rows, w, null, want);
    try {
      const out = dev.alloc(rows * N, false);
      const s0 = stats();
      be.linearQuantized(gpuH(), rows, w, null, out);
      assert.equal(stats().dispatches - s0.dispatches, 2, 'the quantizer, then the product');
      assertNear(await dev.read(out), want, 1e-5, 2e-3 * Math.max(...want.map(Math.abs)), 'folded q4_0 product');
    } finally {
      setBackend('js');
    }
  });

  it('read back instead: recorded first', async () => {
    const { h, dev, gpuH } = await inputs(2, 40);
    try {
      assertNear(await dev.read(gpuH()), h, 1e-6, 1e-6, 'silu(gate)·up');
    } finally {
      setBackend('js');
    }
  });
});

describe('a deferred norm is recorded whenever something else touches it', { skip }, () => {
  const [rows, cols] = [2, 40];
  const n: Norm = { kind: 'layer', weight: true, bias: true };

  it('read back: the norm is recorded first', async () => {
    const [x, w, b] = [rand(rows * cols), rand(cols), rand(cols)];
    const be = await webgpu();
    try {
      const dev = be.device!;
      const s0 = stats();
      const out = gpuNorm(be, n, dev.upload(x), dev.upload(w), dev.upload(b), rows, cols);
      assert.equal(stats().dispatches - s0.dispatches, 0, 'deferred');
      assertNear(await dev.read(out), jsNorm(n, x, w, b, rows, cols), 1e-5, 1e-5, 'normed rows');
      assert.equal(stats().deferredRun - s0.deferredRun, 1);
    } finally {
      setBackend('js');
    }
  });

  it("its input written before anyone reads it: the norm sees the old values", async () => {
    const [x, w, b] = [rand(rows * cols), rand(cols), rand(cols)];
    const be = await webgpu();
    try {
      const dev = be.device!;
      const gx = dev.upload(x);
      const out = gpuNorm(be, n, gx, dev.upload(w), dev.upload(b), rows, cols);
      const other = dev.alloc(rows * cols, false);
      // Read by an elementwise kernel, then x overwritten in place by a queue write and by a kernel.
      be.unary('relu', out, other);
      dev.write(gx, rand(rows * cols));
      const out2 = gpuNorm(be, n, gx, dev.upload(w), dev.upload(b), rows, cols);
      const x2 = await dev.read(gx);
      be.binary('add', gx, [rows * cols], gx, [rows * cols], gx, [rows * cols]);
      assertNear(await dev.read(out), jsNorm(n, x, w, b, rows, cols), 1e-5, 1e-5, 'first norm');
      assertNear(await dev.read(other), jsNorm(n, x, w, b, rows, cols).map((v) => Math.max(0, v)), 1e-5, 1e-5, 'its relu');
      assertNear(await dev.read(out2), jsNorm(n, x2, w, b, rows, cols), 1e-5, 1e-5, 'second norm, of the written x');
    } finally {
      setBackend('js');
    }
  });

  it('its weight updated before the product reads the norm: the product sees the old weight', async () => {
    const [x, w, b, W] = [rand(rows * cols), rand(cols), rand(cols), rand(5 * cols)];
    const want = new Float32Array(rows * 5);
    jsBackend.gemm(gemmArgs({ M: rows, N: 5, K: cols }, mat(want, 5), mat(jsNorm(n, x, w, b, rows, cols), cols), matT(W, cols)));
    const be = await webgpu();
    try {
      const dev = be.device!;
      const gw = dev.upload(w);
      const normed = gpuNorm(be, n, dev.upload(x), gw, dev.upload(b), rows, cols);
      dev.write(gw, rand(cols));
      const out = dev.alloc(rows * 5, false);
      be.gemm(gemmArgs({ M: rows, N: 5, K: cols }, mat(out, 5), mat(normed, cols), matT(dev.upload(W), cols)));
      assertNear(await dev.read(out), want, 1e-4, 1e-4, 'product of the norm with the old weight');
    } finally {
      setBackend('js');
    }
  });

  it('its input released and its buffer handed out again: the norm is recorded before the flush that frees it', async () => {
    const [x, w, b] = [rand(rows * cols), rand(cols), rand(cols)];
    const be = await webgpu();
    try {
      const dev = be.device!;
      const gx = dev.alloc(rows * cols, false);
      dev.write(gx, x);
      const out = gpuNorm(be, n, gx, dev.upload(w), dev.upload(b), rows, cols);
      dev.release(gx);
      dev.flush();
      // Same size: the pool hands x's buffer out again; zeros clears it without a kernel.
      const again = dev.alloc(rows * cols, true);
      dev.write(dev.alloc(rows * cols, false), rand(rows * cols));
      assertNear(await dev.read(out), jsNorm(n, x, w, b, rows, cols), 1e-5, 1e-5, 'normed rows');
      assert.ok((await dev.read(again)).every((v) => v === 0));
    } finally {
      setBackend('js');
    }
  });

  it('its output released unread: dropped, never recorded', async () => {
    const be = await webgpu();
    try {
      const dev = be.device!;
      const s0 = stats();
      const stat = [dev.alloc(rows, false), dev.alloc(rows, false)] as const;
      const out = dev.alloc(rows * cols, false);
      be.layerNormForward(dev.upload(rand(rows * cols)), null, null, out, stat[0], stat[1], rows, cols, 1e-5);
      for (const s of [out, ...stat]) dev.release(s);
      dev.flush();
      await dev.sync();
      assert.equal(stats().dispatches - s0.dispatches, 0);
      assert.equal(stats().deferred - s0.deferred, 1);
      assert.equal(stats().deferredRun - s0.deferredRun, 0);
    } finally {
      setBackend('js');
    }
  });

  it('training with few rows: the backward reads the saved statistics, so the norm is recorded (gradients as js)', async () => {
    const [x0, w0, c0] = [rand(3 * 24, 1, 1), rand(24), rand(3 * 24)];
    const run = () => {
      const x = Tensor.from(x0, [3, 24], true);
      const w = Tensor.from(w0, [24], true);
      const y = sum(mul(layerNorm(x, w, null), Tensor.from(c0, [3, 24])));
      backward(y);
      return { x, w, y };
    };
    setBackend('js');
    const ref = run();
    await webgpu();
    try {
      const got = run();
      assertNear(await got.y.read(), [ref.y.item()], 1e-4, 1e-5, 'loss');
      assertNear(await readGrad(got.x), ref.x.grad!, 1e-3, 1e-5, 'dx');
      assertNear(await readGrad(got.w), ref.w.grad!, 1e-3, 1e-5, 'dw');
    } finally {
      setBackend('js');
    }
  });

  it('ATTN_WEBGPU_NORM_FOLD=0 (setFoldRows(0)): every norm is its own dispatch', async () => {
    const be = await webgpu();
    setFoldRows(0);
    try {
      const dev = be.device!;
      const s0 = stats();
      gpuNorm(be, n, dev.upload(rand(rows * cols)), dev.upload(rand(cols)), dev.upload(rand(cols)), rows, cols);
      assert.equal(stats().dispatches - s0.dispatches, 1);
      assert.equal(stats().deferred - s0.deferred, 0);
    } finally {
      setFoldRows(null);
      setBackend('js');
    }
  });
});

describe("RoPE's rotation of new queries and keys folded into the cached attention on webgpu, against js", { skip }, () => {
  // Interleaved and rotate-half pairs; angles per slot (shared by the batch) and per row (left-padded batches).
  for (const layout of ['interleaved', 'half'] as const) {
    for (const perRow of [false, true]) {
      it(`${layout} pairs, angles per ${perRow ? 'row' : 'slot'}: one dispatch, caches and output as js`, async () => {
        const d = { B: 2, Tq: 2, past: 5, cap: 9, nHead: 4, nKvHead: 2, headDim: 8, scale: 0.3 };
        const W = d.nKvHead * d.headDim;
        const rows = d.B * d.Tq;
        const positions = perRow ? [5, 6, 3, 4] : [5, 6];
        const { cos, sin } = ropeAngles(positions, d.headDim, 10000, null);
        const [q, k, v, kc, vc] = [rand(rows * d.nHead * d.headDim), rand(rows * W), rand(rows * W), rand(d.B * d.cap * W), rand(d.B * d.cap * W)];
        const start = Int32Array.of(0, 2);
        const rot = (x: Float32Array, nHead: number) => {
          const out = new Float32Array(x.length);
          jsBackend.rope(x, out, cos, sin, { B: d.B, T: d.Tq, nHead, headDim: d.headDim, layout }, 1, false);
          return out;
        };
        const [kcWant, vcWant, want] = [kc.slice(), vc.slice(), new Float32Array(q.length)];
        jsBackend.attentionCached(rot(q, d.nHead), kcWant, vcWant, want, start, d, { k: rot(k, d.nKvHead), v });
        const be = await webgpu();
        try {
          const dev = be.device!;
          const [gq, gk, gv, gkc, gvc, out] = [dev.upload(q), dev.upload(k), dev.upload(v), dev.upload(kc), dev.upload(vc), dev.alloc(q.length, false)];
          const gRot = (x: DeviceArray, nHead: number) => {
            const o = dev.alloc(x.length, false);
            made.push(o);
            be.rope(x, o, cos, sin, { B: d.B, T: d.Tq, nHead, headDim: d.headDim, layout }, 1, false);
            return o;
          };
          const s0 = stats();
          be.attentionCached(gRot(gq, d.nHead), gkc, gvc, out, start, d, { k: gRot(gk, d.nKvHead), v: gv });
          assert.equal(stats().dispatches - s0.dispatches, 1, 'the attention alone');
          assertNear(await dev.read(out), want, 1e-4, 1e-5, 'output');
          assertNear(await dev.read(gkc), kcWant, 1e-5, 1e-6, 'key cache (rotated new keys)');
          assert.deepEqual(await dev.read(gvc), vcWant, 'value cache');
          assert.equal(stats().deferredRun - s0.deferredRun, 0);
        } finally {
          setBackend('js');
        }
      });
    }
  }
});

describe('decode tokens of a Llama on webgpu', { skip }, () => {
  it('a block records 5 dispatches (fp32: q·k·v and gate·up each one product) or 12 (q8_0): both RMSNorms and the SwiGLU are folded into the products after them, RoPE into the attention', async () => {
    await webgpu();
    try {
      const perBlock = (q8: boolean) => {
        const count = (layers: number) => {
          const m = tinyLlama({ n_layer: layers, n_embd: 64, head_dim: 16, intermediate_size: 128 });
          if (q8) useQuantizedMatrices(m, quantizeMatrices(m, 'q8_0'));
          moveToBackend(m);
          const cache = new KVCache(m.config, 1, 8);
          logitsCached(m, Int32Array.of(1), [1, 1], cache);
          const s0 = stats();
          logitsCached(m, Int32Array.of(2), [1, 1], cache);
          return { dispatches: stats().dispatches - s0.dispatches, run: stats().deferredRun - s0.deferredRun };
        };
        const [one, three] = [count(1), count(3)];
        assert.deepEqual([one.run, three.run], [0, 0], 'no deferred producer recorded after all');
        return (three.dispatches - one.dispatches) / 2;
      };
      // q·k·v (one product over the adjoining weights, the norm folded in), cached attention (RoPE on q and k folded in), o (+ x), gate·up (the norm folded in), down (+ x, SwiGLU folded in).
      assert.equal(perBlock(false), 5);
      // q8_0: q, k, v and gate, up each their own product (block-quantized layers are not joined), each input quantized once: the normed x twice, the attention's output, SwiGLU's.
      assert.equal(perBlock(true), 12);
    } finally {
      setBackend('js');
    }
  });
});
