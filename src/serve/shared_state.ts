import type { Logger } from 'pino';
import { newRedisClient, type RedisClient } from './redis.js';
import { UserError } from '../util/errors.js';

/**
 * The state replicas of a fleet share through Redis (rate limits, token
 * budgets, the fleet ledger), with a way to keep serving when Redis goes
 * away mid-run: each operation has a Redis form and a local form, and while
 * Redis fails the local one answers. The switch is logged once each way
 * ("now per replica", "shared again") and shown as the gauge
 * attn_shared_state_up, so an operator knows limits are looser meanwhile
 * (each replica enforces them alone).
 */

export type { RedisClient } from './redis.js';

export interface SharedStateOptions {
  url: string;
  namespace: string;
  logger: Logger;
  /** Called with true/false when the shared state comes back or goes away. */
  onChange?: (up: boolean) => void;
}

export class SharedState {
  readonly namespace: string;
  private up = true;

  /** The shared state, connected: a wrong URL stops the server at start-up rather than leaving every replica alone. */
  static async connect(opts: SharedStateOptions): Promise<SharedState> {
    let connected = false;
    // No offline queue: while Redis is away a command fails at once and the local form answers,
    // instead of the request waiting for a reconnection.
    const client = await newRedisClient({
      url: opts.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: 2000, reconnectStrategy: (retries, cause) => (connected ? Math.min(50 * 2 ** retries, 1000) : cause) },
    });
    client.on('ready', () => {
      connected = true;
    });
    client.on('error', () => {}); // reported through run(); an unhandled 'error' would kill the process
    await client.connect().catch((e: Error) => {
      throw new UserError(`cannot connect to the fleet's Redis at ${withoutPassword(opts.url)}: ${e.message || 'connection failed'}`);
    });
    return new SharedState(opts, client);
  }

  private constructor(
    private readonly opts: SharedStateOptions,
    readonly client: RedisClient,
  ) {
    this.namespace = opts.namespace;
  }

  get shared(): boolean {
    return this.up;
  }

  key(...parts: string[]): string {
    return [this.namespace, ...parts].join(':');
  }

  /** `remote` against Redis; if it fails, `local` (and the switch is logged once). */
  async run<T>(what: string, remote: (c: RedisClient) => Promise<T>, local: () => T | Promise<T>): Promise<T> {
    if (this.client.isReady) {
      try {
        const r = await remote(this.client);
        this.mark(true, what);
        return r;
      } catch (e) {
        this.mark(false, what, e as Error);
      }
    } else this.mark(false, what);
    return local();
  }

  private mark(up: boolean, what: string, e?: Error): void {
    if (up === this.up) return;
    this.up = up;
    this.opts.onChange?.(up);
    if (up) this.opts.logger.warn({ shared_state: 'redis' }, 'Redis is reachable again: rate limits, budgets and the fleet ledger are shared again');
    else this.opts.logger.warn({ shared_state: 'local', during: what, err: e?.message ?? 'not connected' }, 'Redis is unreachable: serving on with local state — rate limits and budgets now hold per replica, fleet ledger updates wait until Redis is back');
  }

  async close(): Promise<void> {
    if (this.client.isOpen) await this.client.close().catch(() => {});
  }
}

/** The URL as it may be printed: a password in it stays out of logs. */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}
