import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { linearPanelsWith, packPanels, PANEL_COLS } from '../src/backend/panels.js';
import { generate } from '../src/generate/engine.js';
import { generateSpeculative } from '../src/generate/speculative.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Linear } from '../src/nn/linear.js';
import { packForDecoding, PanelLinear } from '../src/nn/panel_linear.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const addon = loadAddon();
const native = addon ? createNativeBackend(addon) : null;
if (native) registerBackend(native);
const rng = new Rng(5);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
after(() => {
  setBackend('js');
  addon?.setIsa(addon.detectedIsa());
});

describe('column panels (backend/panels.ts)', () => {
  it('packPanels lays out [N, K] as panels of [K][PANEL_COLS], zero past N; the js product equals x·Wᵀ + b', () => {
    const [N, K] = [PANEL_COLS + 3, 5];
    const w = rand(N * K);
    const p = packPanels(w, N, K);
    assert.equal(p.length, 2 * K * PANEL_COLS);
    assert.equal(p[(K * PANEL_COLS) + 2 * PANEL_COLS + 1], w[(PANEL_COLS + 1) * K + 2]);
    assert.equal(p[K * PANEL_COLS + 4], 0);
    const [M, x, bias] = [3, rand(3 * K), rand(N)];
    const got = new Float32Array(M * N);
    linearPanelsWith(x, M, K, p, bias, got, N);
    const want = new Float32Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = bias[n]!;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      want[m * N + n] = s;
    }
    assertClose(got, want, 1e-5);
  });
});

const isas = addon ? [...new Set(['portable', addon.detectedIsa()])] : [];
for (const isa of isas) {
  describe(`native column-panel products agree with the js reference (${isa} path)`, () => {
    before(() => assert.ok(addon!.setIsa(isa)));
    it('1–8 rows in one pass, more in slices; odd N and K, with and without bias, one and two threads', () => {
      for (const threads of [1, 2]) {
        addon!.setThreads(threads);
        for (const [M, N, K] of [[1, 1, 1], [1, 64, 16], [2, 130, 64], [3, 65, 33], [5, 700, 200], [6, 1152, 384], [7, 100, 301], [8, 384, 1536], [9, 70, 20], [20, 129, 48]] as const) {
          for (const withBias of [true, false]) {
            const w = rand(N * K);
            const p = packPanels(w, N, K);
            const x = rand(M * K);
            const bias = withBias ? rand(N) : null;
            const want = new Float32Array(M * N);
            const got = new Float32Array(M * N).fill(NaN);
            jsBackend.linearPanels!(x, M, K, p, bias, want, N);
            native!.linearPanels!(x, M, K, p, bias, got, N);
            assertClose(got, want, 1e-4 * Math.sqrt(K), `threads=${threads} M=${M} N=${N} K=${K} bias=${withBias}`);
          }
        }
      }
      addon!.setThreads(2);
    });
  });
}

for (const name of native ? ['js', 'native'] : ['js']) {
  describe(`PanelLinear and packForDecoding (${name} backend)`, () => {
    it('multiplies like the Linear it packs, for few rows (panels) and many (the Linear\'s product), and keeps its parameters', () => {
      setBackend(name);
      const lin = new Linear(37, 70, { bias: true, std: 0.5, rng: new Rng(2) });
      const packed = new PanelLinear(lin);
      assert.equal(packed.weight, lin.weight);
      for (const rows of [1, 6, 8, 9, 30]) {
        const x = new Tensor(rand(rows * 37), [1, rows, 37]);
        const [want, got] = noGrad(() => [lin.forward(x), packed.forward(x)]);
        assert.deepEqual(got.shape, want.shape);
        assertClose(got.data, want.data, 1e-4, `${rows} rows`);
      }
    });

    it('a packed target decodes the same greedy tokens, alone and with a draft', () => {
      setBackend(name);
      const make = (seed: number, layers: number) => new GPT(parseGPTConfig({ n_layer: layers, n_head: 2, n_embd: 32, block_size: 64, vocab_size: 40, bias: true }), new Rng(seed)).eval();
      const target = make(3, 3);
      const draft = make(9, 1);
      const prompt = [1, 2, 3, 4, 5];
      const want = [...generate(target, prompt, { maxNewTokens: 30, greedy: true })];
      assert.equal(packForDecoding(target), 3 * 4 + 0 * 1, 'the four projections of each block (the tied head stays)');
      assert.deepEqual([...generate(target, prompt, { maxNewTokens: 30, greedy: true })], want);
      for (const k of [1, 4, 7]) assert.deepEqual([...generateSpeculative(target, prompt, { maxNewTokens: 30, greedy: true, draft, k })], want, `k ${k}`);
    });
  });
}
