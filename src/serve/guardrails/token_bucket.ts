import type { SharedState } from '../shared_state.js';

/**
 * Token buckets: a bucket holds up to `capacity` tokens and refills at
 * `refillPerSecond`; a request takes what it costs (1 for a request limit,
 * its tokens for a token limit) or is refused with the time until enough has
 * refilled. Buckets live in Redis when the fleet shares state (one Lua
 * script reads, refills and takes atomically, on Redis's clock, so replicas
 * never race or disagree about time) and in this process otherwise — or
 * while Redis is unreachable.
 */

export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Tokens left after this take (before it, when refused). */
  remaining: number;
  /** When refused: milliseconds until the bucket holds `cost`. */
  retryAfterMs: number;
}

/** The bucket after `elapsedMs` of refilling, then taking `cost` if it can (a negative cost gives back). */
export function takeFrom(tokens: number, elapsedMs: number, spec: BucketSpec, cost: number): { tokens: number; allowed: boolean } {
  const filled = Math.min(spec.capacity, tokens + (Math.max(0, elapsedMs) * spec.refillPerSecond) / 1000);
  if (filled >= cost) return { tokens: Math.min(spec.capacity, filled - cost), allowed: true };
  return { tokens: filled, allowed: false };
}

const retryAfter = (tokens: number, spec: BucketSpec, cost: number): number =>
  cost > spec.capacity ? Infinity : Math.ceil(((cost - tokens) * 1000) / spec.refillPerSecond);

/** Buckets in this process. */
export class LocalBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  take(key: string, spec: BucketSpec, cost: number): TakeResult {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: spec.capacity, at: now };
    const r = takeFrom(b.tokens, now - b.at, spec, cost);
    this.buckets.set(key, { tokens: r.tokens, at: now });
    return { allowed: r.allowed, remaining: r.tokens, retryAfterMs: r.allowed ? 0 : retryAfter(r.tokens, spec, cost) };
  }
}

// KEYS[1] the bucket; ARGV capacity, refill per ms, cost. Returns {allowed, tokens as a string} (Lua numbers would be truncated).
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or cap
local at = tonumber(v[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= cost then
  tokens = math.min(cap, tokens - cost)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 60000)
return {allowed, tostring(tokens)}
`;

/** Buckets shared by the fleet, falling back to this process's own while Redis is away. */
export class SharedBuckets {
  private readonly local: LocalBuckets;

  constructor(
    private readonly shared: SharedState | null,
    now: () => number = Date.now,
  ) {
    this.local = new LocalBuckets(now);
  }

  async take(key: string, spec: BucketSpec, cost: number): Promise<TakeResult> {
    const local = () => this.local.take(key, spec, cost);
    if (!this.shared) return local();
    return this.shared.run(
      'rate limit',
      async (c) => {
        const [allowed, tokens] = (await c.eval(TAKE_SCRIPT, { keys: [this.shared!.key('bucket', key)], arguments: [String(spec.capacity), String(spec.refillPerSecond / 1000), String(cost)] })) as [number, string];
        const remaining = Number(tokens);
        return { allowed: allowed === 1, remaining, retryAfterMs: allowed === 1 ? 0 : retryAfter(remaining, spec, cost) };
      },
      local,
    );
  }
}

/**
 * Token budgets: tokens spent per key in fixed periods (a day by default),
 * counted in Redis across the fleet (INCRBY on a key that expires with its
 * period), locally while Redis is away.
 */
export class SharedBudgets {
  private readonly local = new Map<string, number>();

  constructor(
    private readonly shared: SharedState | null,
    private readonly periodSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  private period(): number {
    return Math.floor(this.now() / 1000 / this.periodSeconds);
  }

  async used(key: string): Promise<number> {
    const k = `${key}:${this.period()}`;
    const local = () => this.local.get(k) ?? 0;
    if (!this.shared) return local();
    return this.shared.run('budget', async (c) => Number((await c.get(this.shared!.key('budget', k))) ?? 0), local);
  }

  async spend(key: string, tokens: number): Promise<number> {
    const k = `${key}:${this.period()}`;
    const local = () => {
      const n = (this.local.get(k) ?? 0) + tokens;
      this.local.set(k, n);
      return n;
    };
    if (!this.shared) return local();
    return this.shared.run(
      'budget',
      async (c) => {
        const [n] = (await c.multi().incrBy(this.shared!.key('budget', k), tokens).expire(this.shared!.key('budget', k), this.periodSeconds + 60).exec()) as unknown as [number];
        return Number(n);
      },
      local,
    );
  }
}
