import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadEmbedder } from '../io/embedder_dir.js';
import { UserError } from '../util/errors.js';
import { loadModel } from '../io/model_dir.js';
import { moveToBackend } from '../nn/placement.js';
import type { Embedder } from '../models/embedder.js';
import type { DecoderLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { ChatTemplate } from '../chat/template.js';
import { endOfTextIds, stopTokenIds } from '../chat/for_tokenizer.js';
import { modelChatTemplate } from './chat_template.js';
import { checkDraftModel, checkDraftTokenizer } from '../generate/speculative.js';
import { Scheduler, type DraftModel, type SchedulerOptions, type SchedulerStats } from './scheduler.js';

/** A model as the server holds it: loaded once, with its tokenizer and its own scheduler. */
export interface ServedModel {
  name: string;
  /** A GPT or a Llama-family decoder: anything with a forward pass over a KV cache and final hidden states. */
  model: DecoderLM;
  tokenizer: Tokenizer;
  scheduler: Scheduler;
  /** Ids that end a generation when sampled: the tokenizer's <|endoftext|> and its eos_token, if it has them. */
  stopTokens: number[];
  /** The model's own chat template (its tokenizer_config.json's), if it has one. */
  chatTemplate?: ChatTemplate | null;
  /** Ids that end the assistant's turn in that template (<|eot_id|>, <|im_end|>, <end_of_turn>, its eos). */
  chatStopTokens?: number[];
  /** Unix seconds, for GET /v1/models. */
  created: number;
  /** A LoRA adapter served over another model (serve/adapters.ts): the base's name and the adapter's id in its bank. */
  adapter?: { base: string; id: number };
}

/** A sentence embedder (models/embedder.ts): served on /v1/embeddings only, any Matryoshka prefix as `dimensions`. */
export interface ServedEmbedder {
  name: string;
  model: Embedder;
  tokenizer: Tokenizer;
  created: number;
}

/** `--model DIR` or `--model NAME=DIR`: the name defaults to the directory's base name. */
export function parseModelSpec(spec: string): { name: string; dir: string } {
  const eq = spec.indexOf('=');
  const [name, dir] = eq > 0 ? [spec.slice(0, eq), spec.slice(eq + 1)] : [basename(resolve(spec)), spec];
  if (dir === '') throw new UserError(`--model ${spec}: no directory after "="`);
  if (!/^[A-Za-z0-9_.:/-]+$/.test(name)) throw new UserError(`--model ${spec}: the name "${name}" may only use letters, digits and _.:/-`);
  if (name === 'auto') throw new UserError('--model: "auto" is reserved for tiered routing; give the model another name (NAME=DIR)');
  return { name, dir };
}

export function serveModel(name: string, model: DecoderLM, tokenizer: Tokenizer, opts: SchedulerOptions, stats?: (name: string) => SchedulerStats, draft?: DraftModel): ServedModel {
  if (tokenizer.vocabSize > model.config.vocab_size) throw new UserError(`model ${name}: its tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocab_size}`);
  const chatTemplate = modelChatTemplate(tokenizer, name);
  moveToBackend(model); // on a device backend the weights go to the device once; nothing on host backends
  if (draft) moveToBackend(draft.model);
  return {
    name,
    model,
    tokenizer,
    scheduler: new Scheduler(model, opts, stats?.(name), draft ?? null),
    stopTokens: endOfTextIds(tokenizer),
    chatTemplate,
    chatStopTokens: chatTemplate ? stopTokenIds(chatTemplate, tokenizer) : [],
    created: Math.floor(Date.now() / 1000),
  };
}

/** Load every `--model` spec — language models, and embedders (config.json model_type "embedder"); names must be unique. */
export function loadServedModels(
  specs: readonly string[],
  opts: SchedulerOptions,
  stats?: (name: string) => SchedulerStats,
): { models: Map<string, ServedModel>; embedders: Map<string, ServedEmbedder> } {
  if (specs.length === 0) throw new UserError('attn serve needs at least one --model DIR');
  const models = new Map<string, ServedModel>();
  const embedders = new Map<string, ServedEmbedder>();
  for (const spec of specs) {
    const { name, dir } = parseModelSpec(spec);
    if (models.has(name) || embedders.has(name)) throw new UserError(`--model: two models are named "${name}"; name them with NAME=DIR`);
    if (isEmbedderDir(dir)) {
      const { model, tokenizer } = loadEmbedder(dir);
      embedders.set(name, { name, model, tokenizer, created: Math.floor(Date.now() / 1000) });
      continue;
    }
    const { model, tokenizer } = loadModel(dir); // a GPT or a Llama-family model, ours or Hugging Face's
    if (!tokenizer) throw new UserError(`${dir} has no tokenizer (tokenizer.json, or vocab.json + merges.txt): text cannot be served`);
    models.set(name, serveModel(name, model, tokenizer, opts, stats, configuredDraft(dir, name, model, tokenizer)));
  }
  return { models, embedders };
}

/**
 * The draft model a model directory's config.json names (`"draft": DIR`,
 * relative to the model's directory, and optionally `"draft_k"`, tokens per
 * round, default 4): the scheduler then decodes speculatively. A draft with
 * another tokenizer or vocabulary is refused, naming the difference.
 */
function configuredDraft(dir: string, name: string, model: DecoderLM, tokenizer: Tokenizer): DraftModel | undefined {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return undefined; // a .gguf file
  const raw = JSON.parse(readFileSync(path, 'utf8')) as { draft?: unknown; draft_k?: unknown };
  if (raw.draft === undefined) return undefined;
  if (typeof raw.draft !== 'string' || raw.draft === '') throw new UserError(`${path}: "draft" must be the draft model's directory`);
  const k = raw.draft_k ?? 4;
  if (!(typeof k === 'number' && Number.isInteger(k) && k >= 1)) throw new UserError(`${path}: "draft_k" must be an integer ≥ 1`);
  const draftDir = resolve(dir, raw.draft);
  const draft = loadModel(draftDir);
  try {
    checkDraftModel(model, draft.model);
    if (!draft.tokenizer) throw new UserError('it has no tokenizer to check against the model\'s');
    checkDraftTokenizer(tokenizer, draft.tokenizer);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`model ${name}: draft ${draftDir}: ${e.message}`);
    throw e;
  }
  return { model: draft.model, k };
}

/** A sentence embedder's directory (config.json model_type "embedder"), not a language model's. */
export function isEmbedderDir(dir: string): boolean {
  try {
    const path = join(dir, 'config.json');
    return existsSync(path) && (JSON.parse(readFileSync(path, 'utf8')) as { model_type?: unknown }).model_type === 'embedder';
  } catch {
    return false; // unreadable: loadModel says what is wrong
  }
}
