import type { createClient } from 'redis';

/**
 * node-redis, loaded the first time something connects: a Redis URL in the
 * server's config, `attn serve --report --fleet`, the fleet bench. Imported
 * with every command it took a third of a second of each `attn` start
 * (`attn --help` included), for the few runs that use it.
 */

export type RedisClient = ReturnType<typeof createClient>;
export type RedisOptions = Parameters<typeof createClient>[0];

let loaded: Promise<typeof import('redis')> | undefined;

/** A new (unconnected) client, node-redis loaded on the first call. */
export async function newRedisClient(options: RedisOptions): Promise<RedisClient> {
  const { createClient } = await (loaded ??= import('redis'));
  return createClient(options);
}
