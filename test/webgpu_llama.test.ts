import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RopeDims } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
import { GpuContext, type GpuSpan, span } from '../src/backend/webgpu/device.js';
import { rope } from '../src/backend/webgpu/kernels/rope.js';
import { swigluBackward, swigluForward } from '../src/backend/webgpu/kernels/swiglu.js';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { openWebGpu } from '../src/backend/webgpu/index.js';
import { runReferenceCheck } from '../src/reference/check.js';
import { Rng } from '../src/util/rng.js';
import { hasShared, REFERENCE_DIR, referenceSkip, SHARED } from './helpers.js';
import { webgpuSkip } from './webgpu_helpers.js';
import { join } from 'node:path';

/*
 * What the Llama family adds on webgpu — SwiGLU and RoPE kernels, each
 * against its js twin — and the PyTorch reference checks of gpt2-tiny and
 * llama-tiny run on webgpu (SwiftShader without a GPU; see
 * webgpu_kernels.test.ts for the skip rules).
 */

const skip = await webgpuSkip('webgpu Llama tests');
const ctx = skip ? null : (await openWebGpu()).ctx;
after(() => setBackend('js'));

const rng = new Rng(5);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** `data` on the GPU from element 3 of its buffer (an offset the kernels must honour). */
function up(data: Float32Array): GpuSpan {
  const padded = new Float32Array(data.length + 4);
  padded.set(data, 3);
  return span(ctx!.upload(padded), 3, data.length);
}
const down = (s: GpuSpan) => ctx!.read(s.buffer, s.offset, s.length);

function near(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  assert.ok(worst <= tol, `${what}: worst ${worst}`);
}

describe('webgpu Llama kernels against js', { skip }, () => {
  it('swiglu forward and backward (accumulating and not, one gradient skipped)', async () => {
    const n = 1000;
    const [g, u, dy, dg0, du0] = [rand(n), rand(n), rand(n), rand(n), rand(n)];
    const out = new Float32Array(n);
    jsBackend.swigluForward(g, u, out);
    const gOut = up(new Float32Array(n));
    swigluForward(ctx!, up(g), up(u), gOut);
    near(await down(gOut), out, 1e-5, 'forward');
    for (const [accGate, accUp] of [[true, false], [false, true]] as const) {
      const [dg, du] = [dg0.slice(), du0.slice()];
      jsBackend.swigluBackward(g, u, dy, dg, du, accGate, accUp);
      const [gdg, gdu] = [up(dg0), up(du0)];
      swigluBackward(ctx!, up(g), up(u), up(dy), gdg, gdu, accGate, accUp);
      near(await down(gdg), dg, 1e-5, `dGate acc=${accGate}`);
      near(await down(gdu), du, 1e-5, `dUp acc=${accUp}`);
    }
    const du = new Float32Array(n);
    jsBackend.swigluBackward(g, u, dy, null, du, false, false);
    const gdu = up(new Float32Array(n));
    swigluBackward(ctx!, up(g), up(u), up(dy), null, gdu, false, false);
    near(await down(gdu), du, 1e-5, 'dUp alone');
  });

  it('rope in both layouts, shared and per-row positions, forward and the accumulating inverse', async () => {
    for (const layout of ['interleaved', 'half'] as const) {
      for (const perRow of [false, true]) {
        const d: RopeDims = { B: 2, T: 5, nHead: 3, headDim: 6, layout };
        const angles = (perRow ? d.B * d.T : d.T) * (d.headDim / 2);
        const cos = rand(angles);
        const sin = rand(angles);
        const x = rand(d.B * d.T * d.nHead * d.headDim);
        const base = rand(x.length);
        for (const [dir, acc] of [[1, false], [-1, true]] as const) {
          const want = base.slice();
          jsBackend.rope(x, want, cos, sin, d, dir, acc);
          const out = up(base);
          rope(ctx!, up(x), out, cos, sin, d, dir, acc);
          near(await down(out), want, 1e-5, `${layout} perRow=${perRow} dir=${dir}`);
        }
      }
    }
  });
});

const LLAMA_DIR = join(SHARED, 'reference', 'llama-tiny');
const missing = [REFERENCE_DIR, LLAMA_DIR].find((d) => !hasShared(d));
const refSkip = skip || referenceSkip(missing ? `${missing} is missing` : false);

describe('the PyTorch reference checks on webgpu', { skip: refSkip }, () => {
  for (const dir of [REFERENCE_DIR, LLAMA_DIR]) {
    it(`passes for ${dir.split('/').at(-1)}`, async () => {
      await selectBackendAsync('webgpu');
      try {
        const report = await runReferenceCheck(dir);
        assert.ok(report.pass, JSON.stringify(report.groups));
      } finally {
        setBackend('js');
      }
    });
  }
});
