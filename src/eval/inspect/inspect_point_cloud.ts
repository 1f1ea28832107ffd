import type { PointPatches } from '../../models/point_patches.js';
import type { PointCloudTransformer } from '../../models/point_transformer.js';
import { noGrad } from '../../tensor/autograd.js';
import { crossEntropy } from '../../tensor/ops/cross_entropy.js';
import type { Tensor } from '../../tensor/tensor.js';
import { UserError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { shuffled } from '../../data/image_set.js';
import { attentionRollout, collectMaps, type AttentionMaps } from './attention_maps.js';
import { removeEachHead, type HeadRemoval } from './head_removal.js';
import { probeStream, type ProbeTarget, type ProbeTable } from './layer_probes.js';
import { argmaxRows } from './logit_lens.js';
import type { EncoderClassifierReport } from './classifier_report.js';

/**
 * The test clouds as the model reads them: each cloud already cut into patch
 * tokens (models/point_patches.ts), its class in the model's numbering, and
 * `batch`, which stacks the chosen clouds into the model's input tensors
 * (the trainer's pointBatch, without rotation: the layers above pass it in).
 */
export interface PointCloudView {
  tokens: PointPatches[];
  labels: Int32Array;
  names: string[];
  batch: (ids: ArrayLike<number>) => { patches: Tensor; centres: Tensor };
}

export interface PointCloudInspectOptions {
  /** Seeds the choice of test clouds: the same seed, the same tables. Default 0. */
  seed?: number;
  /** Test clouds for head removal, the lens and the probes. Default 64. */
  clouds?: number;
  /** How many of the costliest heads to highlight. Default 3. */
  top?: number;
}

/** What `attn inspect` finds in a point-cloud classifier, as data (point_cloud_report_files.ts writes it out). */
export interface PointCloudInspectReport extends EncoderClassifierReport {
  kind: 'pointcloud';
  clouds: number;
  /** The first chosen test cloud, for the maps: its tokens (patches relative to centres), where it came from, its class. */
  cloud: { tokens: PointPatches; name: string; label: string };
  /** Linear probes per layer over the patch tokens: where the patch sits and what shape it has. */
  probes: ProbeTable;
}

/**
 * Per patch token (the class token's rows get 0 and are left out by `keep`):
 * its centre's height (z), its centre's distance from the middle of the cloud,
 * and its spread (the mean distance of its points from their centre — a flat
 * face and a sharp corner differ). The cloud is normalised to the unit sphere
 * around its mean, so the distance is a fraction of the cloud's radius.
 */
function patchTargets(tokens: PointPatches[], G: number, K: number): { keep: Uint8Array; targets: ProbeTarget[] } {
  const T = G + 1;
  const keep = new Uint8Array(tokens.length * T);
  const [height, distance, spread] = [0, 1, 2].map(() => new Float64Array(tokens.length * T));
  tokens.forEach((t, n) => {
    for (let g = 0; g < G; g++) {
      const r = n * T + 1 + g;
      keep[r] = 1;
      const [x, y, z] = [t.centres[g * 3]!, t.centres[g * 3 + 1]!, t.centres[g * 3 + 2]!];
      height![r] = z;
      distance![r] = Math.hypot(x, y, z);
      let s = 0;
      for (let k = 0; k < K; k++) {
        const o = (g * K + k) * 3;
        s += Math.hypot(t.patches[o]!, t.patches[o + 1]!, t.patches[o + 2]!);
      }
      spread![r] = s / K;
    }
  });
  return {
    keep,
    targets: [
      { name: 'height (z) of the patch centre', binary: false, values: height! },
      { name: 'distance of the patch centre from the middle', binary: false, values: distance! },
      { name: 'spread of the patch', binary: false, values: spread! },
    ],
  };
}

/**
 * Look inside a point-cloud classifier on test clouds chosen by a seed — the
 * ViT's inspection (inspect_vit.ts) with point patches for pixel patches:
 * the maps of one cloud, the rollout and what the class token draws on, the
 * test loss without each head, the class token read through the final norm
 * and head after each layer, and probes of what each layer knows of a patch.
 */
export function inspectPointCloud(model: PointCloudTransformer, view: PointCloudView, o: PointCloudInspectOptions = {}): PointCloudInspectReport {
  const c = model.config;
  const count = Math.min(o.clouds ?? 64, view.tokens.length);
  if (count < 4) throw new UserError(`${view.tokens.length} test cloud${view.tokens.length === 1 ? '' : 's'}: inspecting needs at least 4 (¼ of them score the probes)`);
  const seed = o.seed ?? 0;
  const idx = shuffled(view.tokens.length, new Rng(seed)).subarray(0, count);
  const { patches, centres } = view.batch(idx);
  const labels = Int32Array.from(idx, (i) => view.labels[i]!);
  model.eval();
  const T = 1 + c.num_groups;
  const first = view.batch([idx[0]!]);
  const attention = collectMaps((attend) => model.forward(first.patches, first.centres, undefined, attend), [c.n_layer, c.n_head, T]);
  const rollout = attentionRollout(attention);
  const stream = noGrad(() => model.stream(patches, centres));
  const names = stream.map((_, i) => (i === 0 ? 'embeddings' : `layer ${i}`));
  const lens = noGrad(() => stream.map((h, i) => {
    const logits = model.classScores(model.norm.forward(h));
    const top = argmaxRows(logits, c.num_classes);
    return { name: names[i]!, loss: crossEntropy(logits, labels).item(), accuracy: top.filter((t, r) => t === labels[r]).length / top.length };
  }));
  const lossWith = (attend?: Parameters<typeof model.forward>[3]): number => noGrad(() => crossEntropy(model.forward(patches, centres, undefined, attend).logits, labels).item());
  const chosen = Array.from(idx, (i) => view.tokens[i]!);
  const { keep, targets } = patchTargets(chosen, c.num_groups, c.group_size);
  return {
    kind: 'pointcloud',
    layers: c.n_layer,
    heads: c.n_head,
    seed,
    clouds: count,
    cloud: { tokens: chosen[0]!, name: view.names[idx[0]!]!, label: c.labels[labels[0]!] ?? String(labels[0]) },
    attention,
    rollout,
    classRollout: rollout[0]!.slice(1),
    removal: removeEachHead(lossWith, [c.n_layer, c.n_head, c.d_model / c.n_head], o.top ?? 3),
    lens,
    probes: probeStream(stream, keep, targets, names),
  };
}
