import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { JsonConstraint } from '../generate/constrained/json_constraint.js';
import { checkDraftModel, checkDraftTokenizer, SpeculativeStats, type SpeculativeOptions } from '../generate/speculative.js';
import { streamText } from '../generate/stream.js';
import type { CausalLM } from '../models/causal_lm.js';
import { UserError } from '../util/errors.js';
import { loadModel } from '../io/model_dir.js';
import { packForDecoding } from '../nn/panel_linear.js';
import { moveToBackend } from '../nn/placement.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int, num, seed } from './flags.js';

export interface SampleCliOptions {
  model: string;
  prompt?: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  stop?: string[];
  seed: number;
  greedy?: boolean;
  cache?: boolean;
  strictContext?: boolean;
  backend?: string;
  threads?: number;
  jsonSchema?: string;
  jsonObject?: boolean;
  draft?: string;
  draftK?: number;
  draftAuto?: boolean;
}

/** Flag-named checks, so the message says which flag to fix. */
function checkFlags(o: SampleCliOptions): void {
  if (o.temperature < 0) throw new UserError('--temperature must be ≥ 0');
  if (o.topK !== undefined && o.topK < 1) throw new UserError('--top-k must be ≥ 1');
  if (o.topP !== undefined && (o.topP <= 0 || o.topP > 1)) throw new UserError('--top-p must be in (0, 1]');
  if (o.repetitionPenalty !== undefined && o.repetitionPenalty <= 0) throw new UserError('--repetition-penalty must be > 0');
  if (o.maxNewTokens < 0) throw new UserError('--max-new-tokens must be ≥ 0');
  if (o.stop?.some((s) => s === '')) throw new UserError('--stop must not be empty');
  if (o.draftK !== undefined && o.draftK < 1) throw new UserError('--draft-k must be ≥ 1');
}

/** Load a model directory and stream a continuation of the prompt to `write` as it is generated. */
export async function runSample(o: SampleCliOptions, write: (s: string) => void, warn: (s: string) => void = () => {}): Promise<void> {
  checkFlags(o);
  const { backend } = await useBackendAsync(o);
  const { model, tokenizer, source } = loadModel(o.model);
  moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
  if (!tokenizer && source === 'gguf') throw new UserError(`${o.model}: the GGUF file has no tokenizer in its metadata, so a text prompt cannot be encoded (export a model with a sub-word tokenizer, e.g. one trained with --tokenizer bpe)`);
  if (!tokenizer) throw new UserError(`${o.model} has no tokenizer (tokenizer.json, or vocab.json + merges.txt), so a text prompt cannot be encoded`);
  let prompt = o.prompt ?? startText(tokenizer);
  let promptTokens: number;
  try {
    // A special token typed in the prompt (e.g. <|endoftext|>) means the token.
    promptTokens = tokenizer.encode(prompt, { allowedSpecial: 'all' }).length;
    if (promptTokens === 0) prompt = tokenizer.decode([0]);
  } catch (e) {
    throw new UserError(`--prompt: ${(e as Error).message}`);
  }
  // Before anything is written: the prompt is echoed first (unless stdout is to be one JSON document).
  if (o.strictContext && promptTokens >= model.config.block_size) throw new UserError(`--prompt has ${promptTokens} tokens but the model's context is ${model.config.block_size}; shorten it (or drop --strict-context to keep its end)`);
  const constrained = constraintOf(o, tokenizer, model.config.vocab_size);
  const speculative = o.draft === undefined ? undefined : loadDraft(o.draft, model, tokenizer, o.draftK ?? 4, o.draftAuto ?? false);
  if (speculative && backend.device) moveToBackend(speculative.draft);
  // The verifying pass's k + 1 rows then cost about one decode step (nn/panel_linear.ts; the weights twice in memory).
  else if (speculative) packForDecoding(model);
  if (!constrained.constraint) write(prompt);
  const t0 = performance.now();
  const chunks = streamText(model, tokenizer, prompt, {
    maxNewTokens: o.maxNewTokens,
    temperature: o.temperature,
    seed: o.seed,
    cache: o.cache !== false,
    longPrompt: o.strictContext ? 'error' : 'crop',
    onWarning: warn,
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
    ...(o.topP !== undefined ? { topP: o.topP } : {}),
    ...(o.repetitionPenalty !== undefined ? { repetitionPenalty: o.repetitionPenalty } : {}),
    ...(o.stop?.length ? { stop: o.stop } : {}),
    ...(o.greedy ? { greedy: true } : {}),
    ...constrained,
    ...(speculative ? { speculative } : {}),
  });
  for await (const c of chunks) write(c.text);
  write('\n');
  if (speculative) {
    const seconds = (performance.now() - t0) / 1000;
    const s = speculative.stats;
    warn(`speculative decoding: ${s.emitted} tokens in ${seconds.toFixed(2)} s (${(s.emitted / seconds).toFixed(1)} tokens/s), acceptance ${(100 * s.acceptanceRate).toFixed(1)} % of ${s.drafted} drafted, ${s.tokensPerTargetPass.toFixed(2)} tokens per target pass (the speed-up's ceiling)`);
  }
}

/** --draft DIR: a small model with the same tokenizer and vocabulary, for speculative decoding. */
function loadDraft(dir: string, target: CausalLM, tokenizer: Tokenizer, k: number, adaptiveK: boolean): SpeculativeOptions & { stats: SpeculativeStats } {
  const draft = loadModel(dir);
  try {
    checkDraftModel(target, draft.model);
    if (!draft.tokenizer) throw new UserError(`${dir} has no tokenizer, so it cannot be checked against the model's`);
    checkDraftTokenizer(tokenizer, draft.tokenizer);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`--draft ${dir}: ${e.message}`);
    throw e;
  }
  return { draft: draft.model, k, stats: new SpeculativeStats(), ...(adaptiveK ? { adaptiveK } : {}) };
}

/**
 * --json-schema FILE / --json-object: constrained decoding, so the output is
 * one JSON document of the schema; it ends at <|endoftext|> or when the
 * document is finished.
 */
function constraintOf(o: SampleCliOptions, tokenizer: Tokenizer, vocabSize: number): { constraint?: JsonConstraint; stopTokens?: number[] } {
  if (o.jsonSchema !== undefined && o.jsonObject) throw new UserError('--json-schema and --json-object: give one of them');
  const eot = tokenizer.specialTokens.get('<|endoftext|>');
  const stopTokens = eot === undefined ? [] : [eot];
  if (o.jsonObject) return { constraint: JsonConstraint.anyObject(tokenizer, vocabSize, stopTokens), stopTokens };
  if (o.jsonSchema === undefined) return {};
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(o.jsonSchema, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new UserError(`--json-schema ${o.jsonSchema}: ${e instanceof SyntaxError ? `invalid JSON: ${why}` : `cannot read it (${why})`}`);
  }
  try {
    return { constraint: JsonConstraint.fromSchema(schema, tokenizer, vocabSize, stopTokens), stopTokens };
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`--json-schema ${o.jsonSchema}: ${e.message}`);
    throw e;
  }
}

/** With no prompt, start from a newline as nanoGPT does — or, if the vocabulary has none, from token 0. */
function startText(tokenizer: Tokenizer): string {
  try {
    tokenizer.encode('\n');
    return '\n';
  } catch {
    return tokenizer.decode([0]);
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** --stop's escapes \n, \t and \\ (a shell passes "\n" as a backslash and an n); any other backslash stays. */
export function unescapeStop(text: string): string {
  return text.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}

export function sampleCommand(): Command {
  return withBackendFlags(new Command('sample'), { webgpu: true })
    .description('generate text from a model directory (ours, or a Hugging Face GPT-2 or Llama-family one), streamed to stdout')
    .requiredOption('--model <dir>', 'model directory (from attn train, or a Hugging Face GPT-2, Llama, Qwen2 or Mistral download), or a .gguf file')
    .option('--prompt <text>', 'text to continue (default: a newline)')
    .option('--max-new-tokens <n>', 'tokens to generate', int, 500)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', num, 0.8)
    .option('--top-k <k>', 'sample only among the k most likely tokens', int, 200)
    .option('--top-p <p>', 'nucleus sampling: smallest set of tokens with total probability ≥ p', num)
    .option('--repetition-penalty <x>', 'divide logits of tokens already seen by x (> 1 discourages repeats)', num)
    .option('--stop <text>', 'stop when the generated text contains this (repeatable); \\n, \\t and \\\\ mean a newline, a tab and a backslash', (v: string, prev?: string[]) => collect(unescapeStop(v), prev))
    .option('--seed <n>', 'random seed', seed, 1337)
    .option('--greedy', 'always take the most likely token')
    .option('--no-cache', 'recompute the whole context every step instead of using the KV cache (slow; for checking)')
    .option('--json-schema <file>', 'constrained decoding: stdout is one JSON document valid under this JSON Schema, without the prompt (docs/structured_outputs.md)')
    .option('--json-object', 'constrained decoding: stdout is one JSON object, without the prompt')
    .option('--draft <dir>', 'speculative decoding: a small model with the same tokenizer proposes tokens, this one checks them (same output distribution, faster; stops at the context\'s end)')
    .option('--draft-k <n>', 'speculative decoding: tokens the draft proposes per round', int, 4)
    .option('--draft-auto', 'speculative decoding: choose the tokens per round (at most --draft-k) from the running acceptance rate and the measured costs; greedy output is unchanged, a sampling seed no longer reproduces exactly')
    .option('--strict-context', 'error when the prompt is longer than the context instead of keeping its end')
    .action((opts: SampleCliOptions) => runSample(opts, (s) => process.stdout.write(s), (s) => process.stderr.write(`warning: ${s}\n`)));
}
