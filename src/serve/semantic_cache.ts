import { randomBytes } from 'node:crypto';
import { UserError } from '../util/errors.js';
import type { CachedResponse, SemanticCache } from './contracts.js';
import type { CacheSettings } from './config.js';
import { newRedisClient, type RedisClient } from './redis.js';

/**
 * Semantic cache: a prompt whose embedding is close enough (cosine) to a
 * stored prompt's gets the stored response. Embeddings are L2-normalized on
 * the way in, so cosine similarity is a dot product. Entries are kept per
 * model name (a small model's answer is never served for a large one), expire
 * a fixed time after they were stored, and the whole cache is bounded: the
 * least recently used entry goes first.
 *
 * A lookup scans every live entry of its model. That is O(entries × dim), a
 * few milliseconds for thousands of 768-dim entries, which is why max_entries
 * bounds the cache rather than an index structure.
 */

/** A unit-length copy, or null for a zero (or non-finite) vector, which is similar to nothing. */
export function normalize(v: Float32Array): Float32Array | null {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  const norm = Math.sqrt(ss);
  if (!(norm > 0) || !Number.isFinite(norm)) return null;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / norm;
  return out;
}

/** Dot product of two unit vectors, in double precision; vectors of different sizes (another embedder) never match. */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -Infinity;
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Slack for float32 rounding: a prompt identical to a stored one has cosine
 * 1 ± 1e-7, and must still hit at threshold 1.
 */
export const SIMILARITY_SLACK = 1e-6;

/** The threshold for a task type: its own, else the default. */
export function cacheThreshold(settings: Pick<CacheSettings, 'threshold' | 'task_thresholds'>, task: string): number {
  return Object.hasOwn(settings.task_thresholds, task) ? settings.task_thresholds[task]! : settings.threshold;
}

export interface MemoryCacheOptions {
  maxEntries: number;
  ttlSeconds: number;
  /** Milliseconds since the epoch; injected by tests to expire entries without waiting. */
  now?: () => number;
}

interface MemoryEntry {
  model: string;
  embedding: Float32Array;
  response: CachedResponse;
  expiresAt: number;
}

export class MemorySemanticCache implements SemanticCache {
  /** In least- to most-recently-used order: a hit moves its entry to the end. */
  private readonly entries = new Map<number, MemoryEntry>();
  private nextId = 0;
  private readonly now: () => number;

  constructor(private readonly opts: MemoryCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  async lookup(model: string, embedding: Float32Array, threshold: number): Promise<{ response: CachedResponse; similarity: number } | null> {
    const q = normalize(embedding);
    if (!q) return null;
    const now = this.now();
    let best: [number, MemoryEntry] | null = null;
    let bestSim = -Infinity;
    for (const [id, e] of this.entries) {
      if (e.expiresAt <= now) {
        this.entries.delete(id);
        continue;
      }
      if (e.model !== model) continue;
      const sim = cosine(q, e.embedding);
      if (sim > bestSim) [best, bestSim] = [[id, e], sim];
    }
    if (!best || bestSim < threshold - SIMILARITY_SLACK) return null;
    this.entries.delete(best[0]);
    this.entries.set(best[0], best[1]);
    return { response: best[1].response, similarity: bestSim };
  }

  async store(model: string, embedding: Float32Array, response: CachedResponse): Promise<void> {
    const e = normalize(embedding);
    if (!e) return;
    const now = this.now();
    this.entries.set(this.nextId++, { model, embedding: e, response: structuredClone(response), expiresAt: now + this.opts.ttlSeconds * 1000 });
    for (const [id, old] of this.entries) if (old.expiresAt <= now) this.entries.delete(id);
    while (this.entries.size > this.opts.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  async size(): Promise<number> {
    const now = this.now();
    let n = 0;
    for (const e of this.entries.values()) if (e.expiresAt > now) n++;
    return n;
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}

export interface RedisCacheOptions {
  url: string;
  maxEntries: number;
  ttlSeconds: number;
  /** Prefix of every key, e.g. "attn:cache"; servers sharing a namespace share entries. */
  namespace: string;
}

/**
 * Redis layout under namespace N:
 *   N:e:<id>        hash {model, emb (base64 of the unit Float32 vector), resp (JSON)}, PEXPIRE ttl
 *   N:m:<model>     sorted set of the model's entry ids, scored by last use (the scan list)
 *   N:lru           sorted set of "<id>:<model>", scored by last use (the size bound)
 * An id's hash may expire before its index members; scans drop such ids as
 * they meet them, and members older than the TTL are trimmed on every store.
 * Several servers pointing at one Redis and namespace share the cache.
 */
export class RedisSemanticCache implements SemanticCache {
  private connected: RedisClient | null = null;
  private connecting: Promise<unknown> | null = null;
  private lastError: Error | null = null;

  constructor(private readonly opts: RedisCacheOptions) {}

  /** Connects (once); the server awaits this at start-up to fail fast on a bad URL. */
  async ready(): Promise<void> {
    this.connecting ??= this.connect().catch((e: Error) => {
      this.connecting = null;
      throw new UserError(`cannot connect to the semantic cache at ${withoutPassword(this.opts.url)}: ${e.message || this.lastError?.message || 'connection failed'}`);
    });
    await this.connecting;
  }

  private async connect(): Promise<void> {
    // Without the offline queue a command fails at once while Redis is away,
    // instead of holding the request until it comes back. A first connection that fails is reported at once (a bad URL should stop
    // start-up); once connected, a lost connection is retried with back-off.
    let connected = false;
    const client = await newRedisClient({
      url: this.opts.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2000, reconnectStrategy: (retries, cause) => (connected ? Math.min(50 * 2 ** retries, 2000) : cause) },
    });
    client.on('ready', () => {
      connected = true;
    });
    // node-redis reconnects by itself; an unhandled 'error' event would kill the process.
    client.on('error', (e: Error) => {
      this.lastError = e;
    });
    await client.connect();
    this.connected = client;
  }

  /** The connected client (every use follows ready()). */
  private get client(): RedisClient {
    if (!this.connected) throw new Error('the semantic cache is used before ready()');
    return this.connected;
  }

  private key(...parts: string[]): string {
    return [this.opts.namespace, ...parts].join(':');
  }

  async lookup(model: string, embedding: Float32Array, threshold: number): Promise<{ response: CachedResponse; similarity: number } | null> {
    const q = normalize(embedding);
    if (!q) return null;
    await this.ready();
    const ids = await this.client.zRange(this.key('m', model), 0, -1);
    if (ids.length === 0) return null;
    const multi = this.client.multi();
    for (const id of ids) multi.hmGet(this.key('e', id), ['emb', 'resp']);
    const rows = (await multi.exec()) as unknown as Array<Array<string | null>>;
    let best = -1;
    let bestSim = -Infinity;
    const gone: string[] = [];
    rows.forEach((row, i) => {
      const [emb, resp] = row;
      if (emb == null || resp == null) return void gone.push(ids[i]!);
      const sim = cosine(q, fromBase64(emb));
      if (sim > bestSim) [best, bestSim] = [i, sim];
    });
    if (gone.length > 0) await this.forget(model, gone);
    if (best < 0 || bestSim < threshold - SIMILARITY_SLACK) return null;
    const id = ids[best]!;
    const now = Date.now();
    // XX: only refresh entries still indexed (another server may have evicted it meanwhile).
    await this.client
      .multi()
      .zAdd(this.key('m', model), { score: now, value: id }, { XX: true })
      .zAdd(this.key('lru'), { score: now, value: `${id}:${model}` }, { XX: true })
      .exec();
    return { response: JSON.parse(rows[best]![1]!) as CachedResponse, similarity: bestSim };
  }

  async store(model: string, embedding: Float32Array, response: CachedResponse): Promise<void> {
    const e = normalize(embedding);
    if (!e) return;
    await this.ready();
    const id = randomBytes(12).toString('hex');
    const now = Date.now();
    const ttlMs = Math.max(1, Math.round(this.opts.ttlSeconds * 1000));
    await this.client
      .multi()
      .hSet(this.key('e', id), { model, emb: toBase64(e), resp: JSON.stringify(response) })
      .pExpire(this.key('e', id), ttlMs)
      .zAdd(this.key('m', model), { score: now, value: id })
      .zAdd(this.key('lru'), { score: now, value: `${id}:${model}` })
      .zRemRangeByScore(this.key('lru'), '-inf', now - ttlMs)
      .zRemRangeByScore(this.key('m', model), '-inf', now - ttlMs)
      .exec();
    await this.evict();
  }

  /** Drops the least recently used entries beyond maxEntries. */
  private async evict(): Promise<void> {
    const excess = (await this.client.zCard(this.key('lru'))) - this.opts.maxEntries;
    if (excess <= 0) return;
    // ZPOPMIN is atomic, so two servers evicting at once never drop the same entry twice.
    const popped = await this.client.zPopMinCount(this.key('lru'), excess);
    const multi = this.client.multi();
    for (const { value } of popped) {
      const colon = value.indexOf(':');
      const id = value.slice(0, colon);
      multi.del(this.key('e', id)).zRem(this.key('m', value.slice(colon + 1)), id);
    }
    await multi.exec();
  }

  private async forget(model: string, ids: string[]): Promise<void> {
    await this.client
      .multi()
      .zRem(this.key('m', model), ids)
      .zRem(this.key('lru'), ids.map((id) => `${id}:${model}`))
      .exec();
  }

  /** Entries indexed; may count a few that expired since their last use until a scan of their model drops them. */
  async size(): Promise<number> {
    await this.ready();
    return this.client.zCard(this.key('lru'));
  }

  async close(): Promise<void> {
    if (this.connected?.isOpen) await this.connected.close();
  }

  /** Removes every key of this namespace (tests, and `attn serve` has no use for it). */
  async clear(): Promise<void> {
    await this.ready();
    const keys: string[] = [];
    for await (const batch of this.client.scanIterator({ MATCH: `${this.opts.namespace}:*`, COUNT: 500 })) keys.push(...batch);
    if (keys.length > 0) await this.client.del(keys);
  }
}

/** The URL as it may be printed: a password in it stays out of logs. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}

function toBase64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

function fromBase64(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  // Copy into a fresh, aligned buffer: a Buffer's offset into its pool need not be a multiple of 4.
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** The cache the settings ask for, or null when caching is off: Redis for a redis:// URL, else in memory. */
export function createSemanticCache(settings: CacheSettings, opts: { now?: () => number } = {}): MemorySemanticCache | RedisSemanticCache | null {
  if (!settings.enabled) return null;
  const common = { maxEntries: settings.max_entries, ttlSeconds: settings.ttl_seconds };
  if (settings.url === undefined) return new MemorySemanticCache({ ...common, now: opts.now });
  if (!/^rediss?:\/\//.test(settings.url)) throw new UserError(`cache url: "${settings.url}" must be a redis:// or rediss:// URL`);
  return new RedisSemanticCache({ ...common, url: settings.url, namespace: settings.namespace });
}
