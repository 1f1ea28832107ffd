import { shuffled } from '../../data/image_set.js';
import type { LayerAttend } from '../../models/causal_lm.js';
import { noGrad } from '../../tensor/autograd.js';
import { crossEntropy } from '../../tensor/ops/cross_entropy.js';
import { Rng } from '../../util/rng.js';
import { attentionRollout, collectMaps, type AttentionMaps } from './attention_maps.js';
import { crossRollout } from './cross_rollout.js';
import { ATTENTION_KINDS, type AttentionKind, type EncoderDecoderView } from './encoder_decoder_view.js';
import { removeEachHead, type HeadRemoval } from './head_removal.js';
import { probeStream, positionTarget, type ProbeTable } from './layer_probes.js';
import { argmaxRows } from './logit_lens.js';

export interface EncDecInspectOptions {
  /** Seeds the choice of examples: the same seed, the same tables. Default 0. */
  seed?: number;
  /** Examples for head removal, the lens and the probes. Default 32. */
  examples?: number;
  /** How many of the costliest heads (over all three kinds) to highlight. Default 3. */
  top?: number;
}

/** What `attn inspect` finds in an encoder–decoder, as data (encdec_report_files.ts writes it out). */
export interface EncDecInspectReport {
  kind: 'seq2seq' | 'captioner';
  encoderLayers: number;
  decoderLayers: number;
  heads: number;
  seed: number;
  examples: number;
  /** Which example the maps show (its index among those the view offers). */
  first: number;
  /** The first chosen example's source and target positions. */
  srcLabels: string[];
  tgtLabels: string[];
  /** Its attention maps of each kind: encoder Ts×Ts, self Tt×Tt (causal), cross Tt×Ts. */
  attention: Record<AttentionKind, AttentionMaps>;
  /** The encoder's rollout (Ts×Ts) and the decoder's traced through cross-attention to the source (Tt×Ts, cross_rollout.ts). */
  rollout: { encoder: number[][]; cross: number[][] };
  /** Validation loss without each head, per kind; `costliest` ranks all kinds together. */
  removal: { baseline: number; kinds: Record<AttentionKind, HeadRemoval>; costliest: Array<[AttentionKind, number, number]> };
  /** The decoder's stream after each layer read through its final norm and output projection. */
  lens: Array<{ name: string; loss: number; accuracy: number }>;
  probes: { encoder: ProbeTable; decoder: ProbeTable };
}

const layerNames = (n: number): string[] => Array.from({ length: n + 1 }, (_, i) => (i === 0 ? 'embeddings' : `layer ${i}`));

/**
 * Look inside an encoder–decoder on examples chosen by a seed: the maps of
 * all three kinds of attention on the first example, the encoder's rollout
 * and the decoder's traced back to the source, the validation loss without
 * each head of each kind, the logit lens of the decoder, and linear probes
 * on both streams.
 */
export function inspectEncoderDecoder(view: EncoderDecoderView, o: EncDecInspectOptions = {}): EncDecInspectReport {
  const seed = o.seed ?? 0;
  const n = Math.min(o.examples ?? 32, view.count);
  if (n < 4) throw new Error(`need at least 4 examples (¼ of them score the probes), got ${view.count}`);
  const idx = shuffled(view.count, new Rng(seed)).subarray(0, n);
  // The maps: the first example alone, so no padding enters the pictures.
  const one = view.batch([idx[0]!]);
  const mapsOf = (kind: AttentionKind): AttentionMaps => {
    const [layers, T, keys] = kind === 'encoder' ? [view.encoderLayers, one.Ts, one.Ts] : [view.decoderLayers, one.Tt, kind === 'self' ? one.Tt : one.Ts];
    return collectMaps((attend) => one.streams({ [kind]: attend }), [layers, view.heads, T], keys);
  };
  const attention = { encoder: mapsOf('encoder'), self: mapsOf('self'), cross: mapsOf('cross') };
  const encoderRollout = attentionRollout(attention.encoder);

  const all = view.batch(idx);
  const lossOf = (h: Parameters<typeof all.readOut>[0]): { loss: number; accuracy: number } => {
    const logits = all.readOut(h);
    const V = logits.shape.at(-1)!;
    const top = argmaxRows(logits, V);
    const scored = top.map((t, r) => ({ t, y: all.targets[r]! })).filter((x) => x.y !== all.ignoreIndex);
    return { loss: crossEntropy(logits, all.targets, { ignoreIndex: all.ignoreIndex }).item(), accuracy: scored.filter((x) => x.t === x.y).length / Math.max(1, scored.length) };
  };
  const { encoder, decoder } = noGrad(() => all.streams());
  const lens = noGrad(() => decoder.map((h, i) => ({ name: layerNames(view.decoderLayers)[i]!, ...lossOf(h) })));

  const kinds = Object.fromEntries(ATTENTION_KINDS.map((kind) => {
    const lossWith = (attend?: LayerAttend): number => noGrad(() => lossOf(all.streams(attend ? { [kind]: attend } : {}).decoder.at(-1)!).loss);
    const layers = kind === 'encoder' ? view.encoderLayers : view.decoderLayers;
    return [kind, removeEachHead(lossWith, [layers, view.heads, view.headDim], o.top ?? 3)];
  })) as Record<AttentionKind, HeadRemoval>;
  const ranked = ATTENTION_KINDS.flatMap((kind) => kinds[kind].loss.flatMap((row, l) => row.map((v, h) => ({ kind, l, h, v }))))
    .sort((a, b) => b.v - a.v || ATTENTION_KINDS.indexOf(a.kind) - ATTENTION_KINDS.indexOf(b.kind) || a.l - b.l || a.h - b.h);

  return {
    kind: view.kind,
    encoderLayers: view.encoderLayers,
    decoderLayers: view.decoderLayers,
    heads: view.heads,
    seed,
    examples: n,
    first: idx[0]!,
    srcLabels: one.srcLabels,
    tgtLabels: one.tgtLabels,
    attention,
    rollout: { encoder: encoderRollout, cross: crossRollout(attention.self, attention.cross, encoderRollout) },
    removal: { baseline: kinds.encoder.baseline, kinds, costliest: ranked.slice(0, Math.min(o.top ?? 3, ranked.length)).map((r) => [r.kind, r.l, r.h]) },
    lens,
    probes: {
      encoder: probeStream(encoder, all.srcKeep, [positionTarget(all.B, all.Ts), all.encoderProbe], layerNames(view.encoderLayers)),
      decoder: probeStream(decoder, all.tgtKeep, [positionTarget(all.B, all.Tt), all.decoderProbe], layerNames(view.decoderLayers)),
    },
  };
}
