import { Command } from 'commander';
import { benchFleet } from '../bench/fleet.js';
import { NGINX_BIN, REDIS_BIN } from '../bench/fleet_processes.js';
import { UserError } from '../util/errors.js';
import { int } from './flags.js';

interface BenchFleetCliOptions {
  replicas: number;
  clients: number;
  duration: number;
  killAt: number;
  baseline: number;
  promptTokens: number;
  maxTokens: number;
  clientThreads: number;
  model?: string;
  config?: string;
  threads?: number;
  backend?: string;
  json?: boolean;
}

/** `attn bench fleet`: replicas behind nginx, one killed mid-run (src/bench/fleet.ts). */
export function benchFleetCommand(): Command {
  return new Command('fleet')
    .description(
      'the fleet goal: replicas of attn serve behind nginx sharing a redis-server, N streaming clients, one replica SIGKILLed mid-run; ' +
        'throughput against one replica, failed requests (none may start after the kill), the fleet ledger against the clients\' counts. Needs nginx and redis-server installed. ' +
        "bench's --config (124M or S), --threads, --backend (the replicas') and --json apply",
    )
    .option('--replicas <n>', 'replicas behind nginx', int, 2)
    .option('--clients <n>', 'concurrent streaming clients', int, 32)
    .option('--duration <s>', 'seconds of the fleet run', int, 60)
    .option('--kill-at <s>', 'seconds into the fleet run when replica 0 is SIGKILLed', int, 30)
    .option('--baseline <s>', 'seconds of the one-replica baseline', int, 20)
    .option('--model <dir>', 'serve this model directory (a char tokenizer over code points 0x100…, as the bench writes) instead of a random one of --config\'s shape')
    .option('--prompt-tokens <n>', 'prompt length', int, 16)
    .option('--max-tokens <n>', 'tokens generated per request', int, 32)
    .option('--client-threads <n>', 'worker threads the streaming clients are spread over (one thread cannot keep up with a fleet on a many-core machine)', int, 4)
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<BenchFleetCliOptions>();
      if (!NGINX_BIN) throw new UserError('attn bench fleet needs nginx (apt-get install nginx)');
      if (!REDIS_BIN) throw new UserError('attn bench fleet needs redis-server (apt-get install redis-server)');
      const config = o.config ?? 'S';
      if (config !== '124M' && config !== 'S') throw new UserError(`--config: the fleet benchmark takes 124M or S, got "${config}"`);
      if (o.replicas < 2) throw new UserError('--replicas must be at least 2 (one is killed)');
      if (o.clientThreads < 1) throw new UserError('--client-threads must be at least 1');
      if (o.duration < 2 || o.baseline < 2) throw new UserError('--duration and --baseline must be at least 2 seconds');
      if (!(o.killAt > 0 && o.killAt < o.duration)) throw new UserError(`--kill-at must be inside the fleet run (0 < s < --duration ${o.duration}), got ${o.killAt}`);
      if (o.clients < 1) throw new UserError('--clients must be at least 1');
      const row = await benchFleet({
        replicas: o.replicas,
        clients: o.clients,
        seconds: o.duration,
        killAt: o.killAt,
        baselineSeconds: o.baseline,
        promptTokens: o.promptTokens,
        maxTokens: o.maxTokens,
        clientThreads: o.clientThreads,
        config,
        ...(o.model !== undefined ? { modelDir: o.model } : {}),
        ...(o.threads !== undefined ? { threads: o.threads } : {}),
        ...(o.backend !== undefined ? { backend: o.backend } : {}),
        log: (line) => (o.json ? process.stderr : process.stdout).write(`${line}\n`),
      });
      if (o.json) console.log(JSON.stringify(row));
      else for (const [k, v] of Object.entries(row)) console.log(`${k.padEnd(32)} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : JSON.stringify(v)}`);
    });
}
