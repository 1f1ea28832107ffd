import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { Rng } from '../../util/rng.js';
import type { InspectableLM } from './decoder_parts.js';
import { attentionMaps, attentionRollout, type AttentionMaps } from './attention_maps.js';
import { headRemoval, type HeadRemoval } from './head_removal.js';
import { logitLens, type LensLayer } from './logit_lens.js';
import { probeLayers, type Probes } from './probes.js';
import { sampleWindows } from './residual_stream.js';

export interface InspectOptions {
  /** Seeds the choice of validation windows: the same seed, the same tables. Default 0. */
  seed?: number;
  /** Validation windows for head removal, the logit lens and the probes. Default 16. */
  windows?: number;
  /** Tokens per validation window; default the model's block size, at most 128. */
  length?: number;
  /** Tokens shown in the attention maps; default at most 24. */
  mapLength?: number;
  /** How many of the costliest heads to highlight. Default 3. */
  top?: number;
}

/** Everything `attn inspect` finds in a decoder language model, as data (report_files.ts writes it out; the playground draws it). */
export interface InspectReport {
  layers: number;
  heads: number;
  seed: number;
  windows: number;
  length: number;
  /** The tokens of the attention maps' window, as text. */
  mapTokens: string[];
  attention: AttentionMaps;
  rollout: number[][];
  removal: HeadRemoval;
  lens: LensLayer[];
  probes: Probes;
}

/**
 * Look inside a decoder language model (the GPT, the Llama family) on a text: attention maps and rollout on its first
 * tokens, and — on seeded windows of the text's last tenth (attn train's
 * validation part; all of it when short) — the loss without each head, the
 * logit lens and linear probes per layer.
 */
export function inspectDecoder(model: InspectableLM, tokenizer: Tokenizer, text: string, o: InspectOptions = {}): InspectReport {
  const ids = tokenizer.encode(text, { allowedSpecial: 'all' });
  const seed = o.seed ?? 0;
  const windows = o.windows ?? 16;
  const length = Math.min(o.length ?? 128, model.config.block_size);
  if (ids.length < 3) throw new Error(`the text has ${ids.length} tokens: at least 3 are needed`);
  const cut = Math.floor(ids.length * 0.9);
  const val = ids.length - cut > length + 1 ? ids.subarray(cut) : ids;
  const { x, y, B, T } = sampleWindows(val, length, windows, new Rng(seed));
  const mapIds = val.subarray(0, Math.min(o.mapLength ?? 24, length, val.length));
  const attention = attentionMaps(model, mapIds);
  return {
    layers: model.config.n_layer,
    heads: model.config.n_head,
    seed,
    windows: B,
    length: T,
    mapTokens: Array.from(mapIds, (id) => tokenizer.decode([id])),
    attention,
    rollout: attentionRollout(attention),
    removal: headRemoval(model, x, y, [B, T], o.top ?? 3),
    lens: logitLens(model, x, y, [B, T]),
    probes: probeLayers(model, tokenizer, x, y, [B, T]),
  };
}
