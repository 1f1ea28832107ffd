import type { Embedder } from '../../models/embedder.js';
import type { LayerAttend } from '../../models/causal_lm.js';
import { padBatch } from '../../models/pad_batch.js';
import { noGrad } from '../../tensor/autograd.js';
import { meanPool } from '../../tensor/ops/mean_pool.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { UserError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { shuffled } from '../../data/image_set.js';
import { attentionRollout, collectMaps, type AttentionMaps } from './attention_maps.js';
import { removeEachHead, type HeadRemoval } from './head_removal.js';
import { probeStream, positionTarget, type ProbeTable } from './layer_probes.js';

export interface EmbedderInspectOptions {
  /** Seeds the choice of texts: the same seed, the same tables. Default 0. */
  seed?: number;
  /** Texts for head removal, the layer-by-layer reading and the probes. Default 32. */
  texts?: number;
  top?: number;
}

/** What `attn inspect` finds in a sentence embedder, as data (embedder_report_files.ts writes it out). */
export interface EmbedderInspectReport {
  kind: 'embedder';
  layers: number;
  heads: number;
  seed: number;
  texts: number;
  /** The first chosen text's tokens, for the maps. */
  tokens: string[];
  attention: AttentionMaps;
  rollout: number[][];
  /** Each token's share of the mean-pooled vector after the rollout: the mean of the rollout's rows. */
  pooledRollout: number[];
  /** "Loss" = 1 − the mean cosine between each text's vector with the head removed and its intact vector (baseline 0). */
  removal: HeadRemoval;
  /** Each layer's stream pooled as the final one is (final LayerNorm, mean): loss = 1 − mean cosine to the final vector, accuracy = how often it finds its own text's final vector nearest. */
  lens: Array<{ name: string; loss: number; accuracy: number }>;
  probes: ProbeTable;
}

/** Rows of [N, C] scaled to unit length. */
function unitRows(v: Tensor): Float32Array[] {
  const [N, C] = v.shape as [number, number];
  return Array.from({ length: N }, (_, i) => {
    const row = v.data.slice(i * C, (i + 1) * C);
    const n = Math.hypot(...row) || 1;
    return row.map((x) => x / n);
  });
}

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

/**
 * Look inside a sentence embedder on texts chosen by a seed. An embedder has
 * no vocabulary head and, on plain texts, no loss: what a head is worth is
 * measured by how far removing it turns the texts' vectors (1 − cosine to the
 * intact vector), and the "lens" pools each layer's stream as the last one is
 * pooled and asks how close it already is to the final embedding.
 */
export function inspectEmbedder(model: Embedder, tokenizer: Tokenizer, texts: readonly string[], o: EmbedderInspectOptions = {}): EmbedderInspectReport {
  const c = model.config;
  const usable = texts.filter((t) => t.trim().length > 0);
  if (usable.length < 4) throw new UserError(`${usable.length} non-empty line${usable.length === 1 ? '' : 's'} of text: inspecting an embedder needs at least 4 (¼ of them score the probes)`);
  const seed = o.seed ?? 0;
  const idx = shuffled(usable.length, new Rng(seed)).subarray(0, Math.min(o.texts ?? 32, usable.length));
  const seqs = Array.from(idx, (i) => tokenizer.encode(usable[i]!).slice(0, c.max_len));
  const b = padBatch(seqs, c.max_len);
  model.eval();
  const first = seqs[0]!;
  const attention = collectMaps((attend) => model.forward(first, [1, first.length], undefined, attend), [c.n_layer, c.n_head, first.length]);
  const rollout = attentionRollout(attention);
  const intact = noGrad(() => unitRows(model.forward(b.ids, [b.B, b.T], b.padding)));
  const drift = (attend?: LayerAttend): number => noGrad(() => {
    const now = unitRows(model.forward(b.ids, [b.B, b.T], b.padding, attend));
    return now.reduce((s, v, i) => s + 1 - dot(v, intact[i]!), 0) / now.length;
  });
  const stream = noGrad(() => model.stream(b.ids, [b.B, b.T], b.padding));
  const names = stream.map((_, i) => (i === 0 ? 'embeddings' : `layer ${i}`));
  const lens = noGrad(() => stream.map((h, i) => {
    const pooled = unitRows(meanPool(model.ln_f.forward(h), b.padding, model.tokenWeights(b.ids)));
    const found = pooled.filter((v, r) => intact.every((w, k) => k === r || dot(v, w) < dot(v, intact[r]!))).length;
    return { name: names[i]!, loss: pooled.reduce((s, v, r) => s + 1 - dot(v, intact[r]!), 0) / pooled.length, accuracy: found / pooled.length };
  }));
  const keep = Uint8Array.from(b.padding, (p) => 1 - p);
  const space = Float64Array.from(b.ids, (id) => (/^\s/.test(tokenizer.decode([id])) ? 1 : 0));
  return {
    kind: 'embedder',
    layers: c.n_layer,
    heads: c.n_head,
    seed,
    texts: idx.length,
    tokens: Array.from(first, (id) => tokenizer.decode([id])),
    attention,
    rollout,
    pooledRollout: rollout[0]!.map((_, j) => rollout.reduce((s, row) => s + row[j]!, 0) / rollout.length),
    removal: removeEachHead(drift, [c.n_layer, c.n_head, c.d_model / c.n_head], o.top ?? 3),
    lens,
    probes: probeStream(stream, keep, [positionTarget(b.B, b.T), { name: 'the token begins with white space', binary: true, values: space }], names),
  };
}
