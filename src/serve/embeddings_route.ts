import type { ServerResponse } from 'node:http';
import type { ServeContext } from './context.js';
import { ApiError, invalidParam, modelNotFound } from './errors.js';
import { meanPooledEmbeddingAsync } from './pooled_embedding.js';
import { sendJson } from './http_io.js';
import { usageOf } from './openai_format.js';
import { EmbeddingRequestSchema, type EmbeddingRequest } from './request_schemas.js';
import type { RequestState } from './request_state.js';
import { embedTextsAsync } from '../models/embed_texts.js';
import type { ServedEmbedder, ServedModel } from './served_model.js';
import { validate } from './validation.js';

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

function inputs(r: EmbeddingRequest): Array<string | number[]> {
  const x = r.input;
  if (typeof x === 'string') return [x];
  return x.length > 0 && typeof x[0] === 'number' ? [x as number[]] : (x as Array<string | number[]>);
}

function encode(served: ServedModel, input: string | number[], param: string): Int32Array {
  const V = served.model.config.vocab_size;
  let ids: Int32Array;
  if (typeof input === 'string') {
    try {
      ids = served.tokenizer.encode(input, { disallowedSpecial: [] });
    } catch (e) {
      throw invalidParam(param, `Invalid '${param}': model ${served.name} cannot encode it: ${(e as Error).message}`);
    }
  } else {
    const bad = input.find((id) => id >= V);
    if (bad !== undefined) throw invalidParam(param, `Invalid '${param}': token id ${bad} is outside the vocabulary (0 … ${V - 1})`);
    ids = Int32Array.from(input);
  }
  if (ids.length === 0) throw invalidParam(param, `Invalid '${param}': the input has no tokens`);
  const context = served.model.config.block_size;
  if (ids.length > context) throw new ApiError(400, `This model's maximum context length is ${context} tokens, but the input has ${ids.length} tokens`, 'invalid_request_error', param, 'context_length_exceeded');
  return ids;
}

const base64 = (v: Float32Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

/**
 * POST /v1/embeddings: each input's mean-pooled, L2-normalized final hidden
 * states (pooled_embedding.ts), as floats or as base64 of little-endian float32 (the
 * openai client asks for base64 by default and decodes it).
 */
export async function handleEmbeddings(ctx: ServeContext, st: RequestState, body: unknown, res: ServerResponse): Promise<number> {
  const r = validate(EmbeddingRequestSchema, body);
  st.prompt = r.input;
  const embedder = ctx.embedders.get(r.model);
  if (embedder) return sendEmbeddings(ctx, st, r, res, embedder.name, await embedderVectors(embedder, r));
  const served = ctx.models.get(r.model);
  if (!served) throw modelNotFound(r.model);
  st.model = served.name;
  const dim = served.model.config.n_embd;
  if (r.dimensions != null && r.dimensions !== dim) throw invalidParam('dimensions', `Invalid 'dimensions': model ${served.name} gives ${dim}-dimensional embeddings (got ${r.dimensions})`);
  const list = inputs(r);
  const encoded = list.map((x, i) => encode(served, x, list.length > 1 ? `input[${i}]` : 'input'));
  const vectors: Array<{ v: Float32Array; tokens: number }> = [];
  for (const ids of encoded) {
    if (st.ended) throw new ApiError(499, 'The client closed the connection', 'invalid_request_error', null, 'client_closed');
    vectors.push({ v: await meanPooledEmbeddingAsync(served.model, ids), tokens: ids.length });
    await nextTick(); // let decode steps and other requests run between inputs
  }
  return sendEmbeddings(ctx, st, r, res, served.name, vectors);
}

/**
 * A sentence embedder's vectors: the first `dimensions` components of each
 * text's embedding, re-normalised (its Matryoshka prefixes are trained to
 * work alone; OpenAI's `dimensions` means the same shortening).
 */
async function embedderVectors(e: ServedEmbedder, r: EmbeddingRequest): Promise<Array<{ v: Float32Array; tokens: number }>> {
  const full = e.model.config.d_model;
  const dim = r.dimensions ?? full;
  if (dim < 1 || dim > full) throw invalidParam('dimensions', `Invalid 'dimensions': model ${e.name} gives 1 … ${full} dimensions (got ${dim})`);
  const texts = inputs(r).map((x, i) => {
    if (typeof x !== 'string' || x.length === 0) throw invalidParam(inputs(r).length > 1 ? `input[${i}]` : 'input', `Invalid 'input': model ${e.name} embeds non-empty text, not token ids`);
    return x;
  });
  const vs = await embedTextsAsync(e.model, e.tokenizer, texts, dim);
  return vs.map((v, i) => ({ v, tokens: e.tokenizer.encode(texts[i]!).length }));
}

function sendEmbeddings(ctx: ServeContext, st: RequestState, r: EmbeddingRequest, res: ServerResponse, model: string, vectors: Array<{ v: Float32Array; tokens: number }>): number {
  st.model = model;
  const data = vectors.map(({ v }, index) => ({ object: 'embedding', index, embedding: r.encoding_format === 'base64' ? base64(v) : Array.from(v) }));
  const tokens = vectors.reduce((n, x) => n + x.tokens, 0);
  const usage = usageOf(tokens, 0);
  st.usage = usage;
  st.cost = ctx.ledger.record({ id: st.id, model, task: st.task, usage, cached: false, escalations: 0 });
  ctx.recentTasks.set(st.id, st.task);
  ctx.metrics.tokensIn.inc({ model }, tokens);
  ctx.metrics.cost.inc({ model, task: ctx.metrics.taskLabel(st.task) }, st.cost);
  sendJson(res, 200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  return 200;
}
