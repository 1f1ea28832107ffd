import type { AttentionMaps } from './attention_maps.js';
import type { HeadRemoval } from './head_removal.js';
import type { ProbeTable } from './layer_probes.js';

/** The class token after one layer, read through the final norm and the class head: test loss and accuracy. */
export interface ClassLensLayer {
  name: string;
  loss: number;
  accuracy: number;
}

/**
 * What `attn inspect` finds in any encoder classifier (a class token over
 * patch tokens: the ViT, the point-cloud classifier), whatever its input;
 * each kind's report adds what it was shown (an image, a cloud).
 */
export interface EncoderClassifierReport {
  layers: number;
  heads: number;
  seed: number;
  /** The attention maps of the first chosen input: T = 1 + patches, the class token first. */
  attention: AttentionMaps;
  rollout: number[][];
  /** The class token's row of the rollout without its own share: how much the decision draws on each patch. */
  classRollout: number[];
  removal: HeadRemoval;
  /** The class token after each layer read through the final norm and the class head. */
  lens: ClassLensLayer[];
  probes: ProbeTable;
}
