import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The kinds of model directory attn writes, by config.json's model_type.
 * A directory whose model_type is none of these holds a language model: one
 * attn trained ("attn-gpt", "attn-llama") or one from Hugging Face ("gpt2",
 * "llama", "qwen2", …), which loadModel reads.
 */
export const OTHER_MODEL_KINDS: Record<string, { what: string; command: string }> = {
  'transformer-seq2seq': { what: 'an encoder–decoder (seq2seq) translation model', command: 'attn translate --model DIR TEXT' },
  vit: { what: 'a ViT image classifier', command: 'attn vit eval --model DIR --data DIR' },
  embedder: { what: 'a sentence embedder', command: 'attn embed --model DIR TEXT' },
  'image-captioner': { what: 'an image captioner', command: 'attn caption --model DIR IMAGE.png' },
  'point-cloud-transformer': { what: 'a point-cloud classifier', command: 'attn pointcloud predict --model DIR FILE' },
};

/** What a command writes into a model directory: a language model, or one of OTHER_MODEL_KINDS by its model_type. */
export type ModelKind = 'language-model' | keyof typeof OTHER_MODEL_KINDS;

/** In words, for messages: "a language model", "a ViT image classifier", … */
export function describeKind(kind: ModelKind): string {
  return kind === 'language-model' ? 'a language model' : OTHER_MODEL_KINDS[kind]!.what;
}

/** The kind of model directory `dir` holds, from its config.json; null when it has none that parses. */
export function modelKindOf(dir: string): ModelKind | null {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const type = String((raw as { model_type?: unknown }).model_type);
  return type in OTHER_MODEL_KINDS ? type : 'language-model';
}
