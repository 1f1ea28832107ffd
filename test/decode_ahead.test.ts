import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backend } from '../src/backend/index.js';
import { decodeAhead, setDecodeAhead } from '../src/generate/decode_ahead.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { QuantizedEmbedding, quantizeMatrices, useQuantizedMatrices } from '../src/nn/block_quantized.js';
import { Embedding } from '../src/nn/embedding.js';
import { noGrad } from '../src/tensor/autograd.js';
import { embedding } from '../src/tensor/ops/embedding.js';
import { StoredIds } from '../src/tensor/stored_ids.js';
import { Rng } from '../src/util/rng.js';
import { tinyLlama } from './llama_fixture.js';

/*
 * The host side of decoding queued ahead (generate/decode_ahead.ts): ids kept
 * by the backend looked up as host ids are, for inference only, and which
 * models can take them. The queued decoding itself runs on a device backend:
 * test/webgpu_generate.test.ts.
 */

describe('stored token ids', () => {
  it('an embedding of stored ids (floats, as argmaxRows writes them) is the lookup of the same host ids', () => {
    const table = new Embedding(7, 5, { std: 1, rng: new Rng(3) });
    const ids = Int32Array.of(6, 0, 3, 3);
    const want = noGrad(() => table.forward(ids, [2, 2]));
    // Storage longer than the ids: the first `length` are read.
    const got = noGrad(() => table.forward(new StoredIds(Float32Array.of(6, 0, 3, 3, 1), 4), [2, 2]));
    assert.deepEqual(got.shape, [2, 2, 5]);
    assert.deepEqual(got.data, want.data);
  });

  it('with gradients on, stored ids are refused (their lookup records no gradient)', () => {
    const table = new Embedding(7, 5, { std: 1, rng: new Rng(3) });
    assert.throws(() => embedding(table.weight, new StoredIds(Float32Array.of(1), 1)), /ids kept by the backend are for inference/);
  });

  it('an id outside the table is an error on the host backends', () => {
    const table = new Embedding(7, 5, { std: 1, rng: new Rng(3) });
    assert.throws(() => noGrad(() => table.forward(new StoredIds(Float32Array.of(7), 1), [1])), /id 7 outside table of 7 rows/);
    assert.throws(() => backend().embeddingForwardStored(table.weight.data, Float32Array.of(1.5), 1, new Float32Array(5), 5), /id 1.5 outside/);
  });

  it('a GPT and a Llama read stored ids, a block-quantized (GGUF) token table too: its rows as for host ids', () => {
    const gpt = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 32, block_size: 8, vocab_size: 11, bias: true, dropout: 0 }), new Rng(1));
    assert.equal(gpt.readsStoredIds(), true);
    for (const type of ['q8_0', 'q4_0'] as const) {
      const llama = tinyLlama({ n_layer: 1, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 64, vocab_size: 41, block_size: 16, tie_word_embeddings: false });
      assert.equal(llama.readsStoredIds(), true);
      useQuantizedMatrices(llama, quantizeMatrices(llama, type));
      assert.ok(llama.model.embed_tokens instanceof QuantizedEmbedding, 'the token table is quantized');
      assert.equal(llama.readsStoredIds(), true);
      const ids = Int32Array.of(40, 0, 7);
      const want = noGrad(() => llama.model.embed_tokens.forward(ids, [1, 3]));
      const got = noGrad(() => llama.model.embed_tokens.forward(new StoredIds(Float32Array.from(ids), 3), [1, 3]));
      assert.deepEqual(got.data, want.data, type);
      assert.throws(() => noGrad(() => llama.model.embed_tokens.forward(new StoredIds(Float32Array.of(41), 1), [1])), /id 41 outside table of 41 rows/);
    }
  });

  it('setDecodeAhead takes a count of steps and returns the last one', () => {
    const was = setDecodeAhead(3);
    try {
      assert.equal(decodeAhead(), 3);
      assert.equal(setDecodeAhead(0), 3);
      assert.throws(() => setDecodeAhead(-1), /not a count of steps/);
      assert.throws(() => setDecodeAhead(1.5), /not a count of steps/);
    } finally {
      setDecodeAhead(was);
    }
  });
});
