import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { forwardCached } from '../src/generate/cached_forward.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { loadModel, loadGPT, modelFiles } from '../src/io/model_dir.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Linear } from '../src/nn/linear.js';
import type { Module } from '../src/nn/module.js';
import { dequantize, isQuantized, quantize, QuantizedLinear } from '../src/nn/quantized_linear.js';
import { TiedLinear } from '../src/nn/tied_linear.js';
import { noGrad } from '../src/tensor/autograd.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'attn-qlinear-'));
after(() => rmSync(work, { recursive: true, force: true }));
setBackend('js');

const tokenizer = CharTokenizer.fromText('abcdefghijklmnopqrstuvwxyz .,');
const config = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 16, vocab_size: tokenizer.vocabSize, bias: true });

/** Bytes held by a model's weights: fp32 parameters and quantized matrices, counted apart. */
function weightBytes(m: Module): { fp32: number; quantized: number; fp32Matrices: number } {
  let fp32 = 0;
  let fp32Matrices = 0;
  for (const [name, p] of m.namedParameters()) {
    fp32 += p.data.byteLength;
    if (p.rank === 2 && name !== 'wte.weight' && name !== 'wpe.weight') fp32Matrices += p.data.byteLength;
  }
  let quantized = 0;
  for (const [, layer] of m.namedModules()) if (layer instanceof QuantizedLinear) quantized += layer.weightBytes + (layer.bias?.data.byteLength ?? 0);
  return { fp32, quantized, fp32Matrices };
}

const logits = (m: GPT, ids: number[]): Float32Array => noGrad(() => m.forward(Int32Array.from(ids), [1, ids.length]).logits.data);

describe('QuantizedLinear', () => {
  it('quantize swaps every Linear and the tied head; no fp32 matrix is left but the embeddings', () => {
    const m = new GPT(config, new Rng(3)).eval();
    const linears = m.namedModules().filter(([, l]) => l instanceof Linear).length;
    assert.equal(linears, 4 * config.n_layer);
    const before = weightBytes(m);
    quantize(m);
    assert.ok(isQuantized(m));
    assert.equal(m.namedModules().filter(([, l]) => l instanceof Linear).length, 0);
    assert.equal(m.namedModules().filter(([, l]) => l instanceof QuantizedLinear).length, linears + 1);
    assert.ok(m.lm_head instanceof QuantizedLinear && m.lm_head.tiedHead !== null);
    const after = weightBytes(m);
    assert.equal(after.fp32Matrices, 0);
    // fp32 left: the two embedding tables, the LayerNorms (the biases moved into the QuantizedLinears).
    const C = config.n_embd;
    const norms = (2 * config.n_layer + 1) * 2 * C * 4;
    assert.equal(after.fp32, (config.vocab_size + config.block_size) * C * 4 + norms);
    // One byte per weight where fp32 took four (plus a scale per row, and the head's own int8 table).
    const int8Values = m.namedModules().reduce((n, [, l]) => n + (l instanceof QuantizedLinear && !l.tiedHead ? l.weight.data.byteLength : 0), 0);
    assert.equal(int8Values, before.fp32Matrices / 4);
    assert.ok(after.quantized < before.fp32Matrices / 2, `${after.quantized} bytes quantized vs ${before.fp32Matrices} fp32`);
  });

  it('dequantize gives Linears (and the tied head) back that compute the same logits', () => {
    const m = new GPT(config, new Rng(4)).eval();
    quantize(m);
    const ids = [1, 5, 9, 2, 7];
    const viaInt8 = logits(m, ids);
    dequantize(m);
    assert.ok(!isQuantized(m));
    assert.ok(m.lm_head instanceof TiedLinear);
    assert.equal(m.namedModules().filter(([, l]) => l instanceof Linear).length, 4 * config.n_layer);
    assertClose(logits(m, ids), viaInt8, 1e-5, 'dequantized fp32 vs int8 kernels');
  });

  it('an int8 directory loads straight into QuantizedLinears, without fp32 matrices, and decodes as before saving', () => {
    const m = new GPT(config, new Rng(5)).eval();
    quantize(m);
    const dir = join(work, 'int8');
    writeDirAtomic(dir, modelFiles(m, tokenizer));
    const loaded = loadGPT(dir).model;
    assert.ok(isQuantized(loaded));
    for (const [name, layer] of m.namedModules()) {
      if (!(layer instanceof QuantizedLinear)) continue;
      const twin = loaded.namedModules().find(([n]) => n === name)![1];
      assert.ok(twin instanceof QuantizedLinear, `${name} loads as a QuantizedLinear`);
      assert.deepEqual(twin.weight.data, layer.weight.data);
    }
    assert.equal(weightBytes(loaded).fp32Matrices, 0);
    assert.equal(weightBytes(loaded).fp32, weightBytes(m).fp32);
    const ids = [3, 1, 4, 1, 5];
    assertClose(logits(loaded, ids), logits(m, ids), 1e-6, 'loaded vs in-memory quantized');
    // Cached decoding reads the quantized layers too.
    const cache = new KVCache(loaded.config, 1, 8);
    const got = noGrad(() => forwardCached(loaded, Int32Array.from(ids), [1, ids.length], cache)).data;
    assertClose(got, noGrad(() => loaded.nextTokenLogits(Int32Array.from(ids), [1, ids.length])).data, 2e-5, 'cached vs full');
  });

  it('a loaded fp32 model adopts the arrays read from the file', () => {
    const m = new GPT(config, new Rng(6)).eval();
    const dir = join(work, 'fp32');
    writeDirAtomic(dir, modelFiles(m, tokenizer));
    const loaded = loadGPT(dir).model;
    assert.ok(!isQuantized(loaded));
    assertClose(logits(loaded, [2, 3]), logits(m, [2, 3]), 0, 'same logits');
    for (const [name, p] of loaded.namedParameters()) assert.equal(p.size, p.shape.reduce((a, b) => a * b, 1), name);
  });
});
