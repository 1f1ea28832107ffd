import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

/**
 * Read a request body up to `limit` bytes (413 past it, without reading the
 * rest) and parse it as JSON (400 with the parser's message when it is not).
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new ApiError(400, 'The request body is empty: send a JSON object');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ApiError(400, `The request body is not valid JSON: ${(e as Error).message}`, 'invalid_request_error', null, 'invalid_json');
  }
}

const tooLarge = (limit: number) => new ApiError(413, `The request body is larger than ${limit} bytes`, 'invalid_request_error', null, 'request_too_large');

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * As sendJson, but the status line and headers leave first, then `beforeBody`
 * is awaited, then the body. The server uses it so that a reply's first bytes
 * are out before the fleet ledger records the request: a balancer resends
 * only a request whose replica sent nothing, so no request is both recorded
 * by a replica that died and run again by another.
 */
export async function sendJsonHeadFirst(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>, beforeBody: () => Promise<void>): Promise<void> {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.flushHeaders();
  await beforeBody();
  res.end(text);
}

export function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, e.status, e.toJSON(), e.headers);
}
