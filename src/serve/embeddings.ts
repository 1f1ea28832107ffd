import type { ServerResponse } from 'node:http';
import type { ServeContext } from './context.js';
import { ApiError, invalidParam, modelNotFound } from './errors.js';
import { meanPooledEmbedding } from './embedding.js';
import { sendJson } from './http_io.js';
import { usageOf } from './openai_format.js';
import { EmbeddingRequestSchema, type EmbeddingRequest } from './request_schemas.js';
import type { RequestState } from './request_state.js';
import type { ServedModel } from './served_model.js';
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
 * states (embedding.ts), as floats or as base64 of little-endian float32 (the
 * openai client asks for base64 by default and decodes it).
 */
export async function handleEmbeddings(ctx: ServeContext, st: RequestState, body: unknown, res: ServerResponse): Promise<number> {
  const r = validate(EmbeddingRequestSchema, body);
  const served = ctx.models.get(r.model);
  if (!served) throw modelNotFound(r.model);
  st.model = served.name;
  st.prompt = r.input;
  const dim = served.model.config.n_embd;
  if (r.dimensions != null && r.dimensions !== dim) throw invalidParam('dimensions', `Invalid 'dimensions': model ${served.name} gives ${dim}-dimensional embeddings (got ${r.dimensions})`);
  const list = inputs(r);
  const encoded = list.map((x, i) => encode(served, x, list.length > 1 ? `input[${i}]` : 'input'));
  const data: object[] = [];
  for (const [index, ids] of encoded.entries()) {
    if (st.ended) throw new ApiError(499, 'The client closed the connection', 'invalid_request_error', null, 'client_closed');
    const v = meanPooledEmbedding(served.model, ids);
    data.push({ object: 'embedding', index, embedding: r.encoding_format === 'base64' ? base64(v) : Array.from(v) });
    await nextTick(); // let decode steps and other requests run between inputs
  }
  const tokens = encoded.reduce((n, ids) => n + ids.length, 0);
  const usage = usageOf(tokens, 0);
  st.usage = usage;
  st.cost = ctx.ledger.record({ id: st.id, model: served.name, task: st.task, usage, cached: false, escalations: 0 });
  ctx.recentTasks.set(st.id, st.task);
  ctx.metrics.tokensIn.inc({ model: served.name }, tokens);
  ctx.metrics.cost.inc({ model: served.name, task: ctx.metrics.taskLabel(st.task) }, st.cost);
  sendJson(res, 200, { object: 'list', data, model: served.name, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  return 200;
}
