import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Optional API keys (`--api-key`, `ATTN_API_KEYS`): with none configured the
 * server is open (it binds to loopback by default); with some, every request
 * but GET /health needs `Authorization: Bearer <key>`, as OpenAI's clients
 * send it. Keys are compared as SHA-256 digests in constant time.
 */
export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.filter((k) => k.length > 0).map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  check(req: IncomingMessage): void {
    if (!this.enabled) return;
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
    if (!m) throw new ApiError(401, 'Missing API key: send it as "Authorization: Bearer <key>"', 'invalid_request_error', null, 'missing_api_key');
    const d = digest(m[1]!);
    if (!this.digests.some((k) => timingSafeEqual(k, d))) throw new ApiError(401, 'Incorrect API key provided', 'invalid_request_error', null, 'invalid_api_key');
  }
}

/** Keys from repeated --api-key flags and the comma-separated ATTN_API_KEYS variable. */
export function apiKeysFrom(flags: readonly string[] = [], env: string | undefined = process.env.ATTN_API_KEYS): string[] {
  const fromEnv = (env ?? '').split(',').map((k) => k.trim()).filter((k) => k.length > 0);
  return [...flags, ...fromEnv];
}
