import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nginxConfig } from '../serve/nginx_conf.js';

/**
 * The processes of a fleet on one machine, for the fleet benchmark and
 * tests: a private redis-server and nginx on spare loopback ports, and
 * `attn serve` replicas as child processes (so that one can be killed).
 */

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export const REDIS_BIN = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find(existsSync);
export const NGINX_BIN = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find(existsSync);

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));
}

export interface RedisProcess {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A redis-server of our own, keeping nothing on disk (it can be stopped and started again on the same port). */
export async function startRedis(): Promise<RedisProcess> {
  if (!REDIS_BIN) throw new Error('redis-server is not installed');
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const ping = () => Promise.resolve(spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG');
  const start = async () => {
    proc = spawn(REDIS_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitUntil(ping, 10_000, 'redis-server');
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    async stop() {
      if (!proc) return;
      proc.kill('SIGKILL');
      await exited(proc);
      proc = null;
    },
  };
}

export interface Replica {
  port: number;
  proc: ChildProcess;
  stderr: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** `attn serve --model SPEC --config FILE` on a spare port; resolves when /health answers. */
export async function startReplica(modelSpec: string, configPath: string, extra: string[] = []): Promise<Replica> {
  const port = await freePort();
  const proc = spawn(process.execPath, [MAIN, 'serve', '--model', modelSpec, '--port', String(port), '--config', configPath, '--log-level', 'warn', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (b: Buffer) => stderr.push(b.toString()));
  await waitUntil(async () => {
    if (proc.exitCode !== null) throw new Error(`attn serve exited: ${stderr.join('')}`);
    return (await fetch(`http://127.0.0.1:${port}/health`)).ok;
  }, 60_000, `replica on port ${port}`).catch((e: Error) => {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}: ${stderr.join('')}`);
  });
  return {
    port,
    proc,
    stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited(proc);
    },
  };
}

export interface Nginx {
  url: string;
  stop(): Promise<void>;
  errorLog(): string;
}

/** nginx in the foreground with nginx_conf.ts's configuration, its files all under `dir`. */
export async function startNginx(dir: string, upstreams: readonly string[], opts: { keepalive?: number } = {}): Promise<Nginx> {
  if (!NGINX_BIN) throw new Error('nginx is not installed');
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig({ listen: `127.0.0.1:${port}`, upstreams, prefix: dir, asRoot: process.getuid?.() === 0, ...opts }));
  const proc = spawn(NGINX_BIN, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (b: Buffer) => stderr.push(b.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${stderr.join('')}`);
    return (await fetch(`${url}/health`)).status < 500;
  }, 10_000, 'nginx').catch((e: Error) => {
    proc.kill('SIGKILL');
    throw e;
  });
  return {
    url,
    errorLog: () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''),
    async stop() {
      proc.kill('SIGQUIT');
      await exited(proc);
    },
  };
}
