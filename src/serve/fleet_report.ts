import { UserError } from '../util/errors.js';
import { formatReport } from './economics.js';
import { fleetReport } from './fleet_ledger.js';
import { newRedisClient } from './redis.js';
import { withoutPassword } from './shared_state.js';

/** `attn serve --report --fleet URL`: the cost report of every replica together, read from the fleet's Redis. */
export async function printFleetReport(url: string, namespace: string, json: boolean): Promise<void> {
  if (!/^rediss?:\/\//.test(url)) throw new UserError(`--fleet ${url}: must be a redis:// or rediss:// URL`);
  const client = await newRedisClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    throw new UserError(`cannot connect to the fleet's Redis at ${withoutPassword(url)}: ${(e as Error).message || 'connection failed'}`);
  }
  try {
    const report = await fleetReport(client, namespace);
    if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      process.stdout.write(formatReport(report));
      process.stdout.write(`\nreplicas (${report.by_replica.length}): ${report.by_replica.map((r) => `${r.replica} ${r.requests}`).join(', ') || '—'}\n`);
    }
  } finally {
    await client.close().catch(() => {});
  }
}
