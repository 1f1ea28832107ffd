import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Transformer } from '../src/models/transformer.js';
import { parseTransformerConfig } from '../src/models/transformer_config.js';
import { ViT } from '../src/models/vit.js';
import { parseViTConfig } from '../src/models/vit_config.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

/**
 * Every model family's outputs (and the GPT's loss gradients) for fixed seeds
 * and inputs, compared with the numbers the code gave before the layers were
 * unified (test/fixtures/layers_baseline.json, written by this file on main
 * with ATTN_WRITE_BASELINE=1). Only public model APIs are called, so the
 * same file ran on both sides of the refactor.
 */
const FIXTURE = resolve(process.cwd(), 'test/fixtures/layers_baseline.json');

function ids(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

/** A few summary numbers of a long array plus its first values: enough to catch any change. */
function digest(a: ArrayLike<number>): number[] {
  let s = 0;
  let s2 = 0;
  let w = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]!;
    s2 += a[i]! * a[i]!;
    w += a[i]! * ((i % 7) - 3);
  }
  return [s, s2, w, ...Array.from(a).slice(0, 8)];
}

function gptCase(positionEncoding: 'learned' | 'rope'): Record<string, number[]> {
  const cfg = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 16, vocab_size: 23, bias: true, dropout: 0, position_encoding: positionEncoding });
  const m = new GPT(cfg, new Rng(7));
  const x = ids(2 * 9, 23, 1);
  const y = ids(2 * 9, 23, 2);
  const { logits, loss } = m.forward(x, [2, 9], y);
  backward(loss!);
  const grads = m.namedParameters().map(([, p]) => digest(p.grad!)[1]!);
  const last = noGrad(() => m.nextTokenLogits(x, [2, 9]));
  return { logits: digest(logits.data), loss: [loss!.item()], grads, last: digest(last.data) };
}

function seq2seqCase(norm: 'pre' | 'post', positions: 'sinusoidal' | 'rope'): Record<string, number[]> {
  const cfg = parseTransformerConfig({ vocab_size: 19, n_encoder_layers: 2, n_decoder_layers: 2, d_model: 16, n_head: 2, d_ff: 32, norm, positions, activation: norm === 'pre' ? 'gelu' : 'relu' });
  const m = new Transformer(cfg, new Rng(3));
  // Row 1 of each is padded (pad_id 0) at the end.
  const src = ids(2 * 7, 19, 4).map((v) => v || 1);
  src.fill(0, 7 + 5);
  const tgt = ids(2 * 6, 19, 5).map((v) => v || 1);
  tgt.fill(0, 6 + 4);
  const logits = noGrad(() => m.forward({ ids: src, shape: [2, 7] }, { ids: tgt, shape: [2, 6] }).logits);
  const cross = noGrad(() => {
    m.decode(m.encode({ ids: src, shape: [2, 7] }), { ids: tgt, shape: [2, 6] }, { keepWeights: true });
    const w = m.crossAttention()!;
    assert.equal(m.crossAttention(), null, 'the probe lets go of q and k once their weights are taken');
    return w;
  });
  return { logits: digest(logits.data), cross: digest(cross) };
}

function vitCase(): Record<string, number[]> {
  const cfg = parseViTConfig({ image_height: 4, image_width: 4, channels: 1, patch_size: 2, d_model: 8, n_layer: 2, n_head: 2, d_ff: 16, num_classes: 3, labels: ['a', 'b', 'c'], pixel_mean: [0], pixel_std: [1] });
  const m = new ViT(cfg, new Rng(5));
  const rng = new Rng(6);
  const images = new Tensor(Float32Array.from({ length: 2 * 16 }, () => rng.normal()), [2, 4, 4, 1]);
  return { logits: digest(noGrad(() => m.forward(images).logits).data) };
}

function embedderCase(positions: 'learned' | 'rope'): Record<string, number[]> {
  const cfg = parseEmbedderConfig({ vocab_size: 17, d_model: 8, n_layer: 2, n_head: 2, positions });
  const m = new Embedder(cfg, new Rng(8));
  const x = ids(2 * 5, 17, 9);
  const padding = Uint8Array.from({ length: 10 }, (_, i) => (i >= 8 ? 1 : 0));
  return { embedding: digest(noGrad(() => m.forward(x, [2, 5], padding)).data) };
}

function allCases(): Record<string, Record<string, number[]>> {
  return {
    gpt_learned: gptCase('learned'),
    gpt_rope: gptCase('rope'),
    seq2seq_post: seq2seqCase('post', 'sinusoidal'),
    seq2seq_pre_rope: seq2seqCase('pre', 'rope'),
    vit: vitCase(),
    embedder_learned: embedderCase('learned'),
    embedder_rope: embedderCase('rope'),
  };
}

describe('layers: outputs unchanged by the refactor (fixed seeds, saved from main)', () => {
  const got = allCases();
  if (process.env.ATTN_WRITE_BASELINE === '1') writeFileSync(FIXTURE, JSON.stringify(got, null, 1) + '\n');
  const want = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, Record<string, number[]>>;
  it('the fixture exists', () => assert.ok(existsSync(FIXTURE)));
  for (const [name, parts] of Object.entries(want)) {
    it(`${name} gives the same numbers`, () => {
      for (const [part, values] of Object.entries(parts)) {
        const g = got[name]![part]!;
        assert.equal(g.length, values.length, `${name}.${part}: length`);
        values.forEach((v, i) => {
          const tol = 1e-4 * Math.max(1, Math.abs(v));
          assert.ok(Math.abs(g[i]! - v) <= tol, `${name}.${part}[${i}]: ${g[i]} vs ${v} (main)`);
        });
      }
    });
  }
});
