import { NGINX_BIN, REDIS_BIN } from '../src/bench/fleet_processes.js';

/**
 * The fleet tests' switches: each test skips with a message when
 * redis-server or nginx is missing, and fails instead under
 * ATTN_REQUIRE_REDIS=1 / ATTN_REQUIRE_NGINX=1 (CI). The processes
 * themselves come from src/bench/fleet_processes.ts, which the fleet
 * benchmark uses too.
 */
export { freePort, NGINX_BIN, REDIS_BIN, startNginx, startRedis, startReplica, type Replica } from '../src/bench/fleet_processes.js';

export function skipUnless(bin: string | undefined, name: 'redis-server' | 'nginx', requireVar: string): string | false {
  if (bin) return false;
  const why = `${name} is not installed (apt-get install ${name} to run the fleet tests)`;
  if (process.env[requireVar] === '1') throw new Error(`${requireVar}=1 but ${why}`);
  return why;
}

