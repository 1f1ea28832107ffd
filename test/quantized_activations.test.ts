import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { jsBackend } from '../src/backend/js/index.js';
import { quantizeActivations } from '../src/backend/js/quantized.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { quantizeMatrix } from '../src/backend/quantized_matrix.js';
import { Rng } from '../src/util/rng.js';

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native)';
after(() => addon?.setIsa(addon.detectedIsa()));

// Block 0 has max |x| = 127, so its scale is 1 and x·(1/d) = x: the ties (k + 0.5) and the values just
// below a half must round as C's roundf does (half away from zero), as the js twin does.
const ties = [127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 0.49999997, -0.49999997, 126.5, -126.5, 3.4999998, -3.4999998, 0, -0, 64.5];
const expected = [127, 3, -3, 1, -1, 2, -2, 0, 0, 127, -127, 3, -3, 0, 0, 65];

it('the native activation quantizer (AVX-512 and portable) gives the js twin\'s bytes: ties away from zero, every block', { skip }, () => {
  const K = 64;
  const rng = new Rng(3);
  const x = new Float32Array(K);
  x.set(ties);
  for (let i = ties.length; i < K; i++) x[i] = rng.normal() * (i < 32 ? 10 : 0.01);
  assert.deepEqual(Array.from(quantizeActivations(x, 1, K).q.slice(0, ties.length)), expected);
  // y = x·Wᵀ with W q8_0 "identity" rows (127 at column n, scale 1/127): y[n] = d_x·q_x[n], each byte read back.
  const eye = new Float32Array(K * K);
  for (let n = 0; n < K; n++) eye[n * K + n] = 1;
  const want = new Float32Array(K);
  jsBackend.linearQuantized(x, 1, quantizeMatrix('q8_0', eye, K, K), null, want);
  for (const isa of [...new Set(['portable', addon!.detectedIsa()])]) {
    assert.ok(addon!.setIsa(isa));
    const native = createNativeBackend(addon!);
    const got = new Float32Array(K);
    native.linearQuantized(x, 1, quantizeMatrix('q8_0', eye, K, K), null, got);
    for (let n = 0; n < K; n++) assert.ok(Math.abs(got[n]! - want[n]!) <= 1e-6 * Math.max(1e-3, Math.abs(want[n]!)), `${isa}: value ${n} (x = ${x[n]}) gave ${got[n]}, js ${want[n]}`);
  }
});
