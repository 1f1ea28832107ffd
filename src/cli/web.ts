import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { int } from './flags.js';

/** Where `npm run build:web` puts the playground: dist/playground in the package root. */
export const PLAYGROUND_DIR = fileURLToPath(new URL('../../playground', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
};

/**
 * Serve a directory of static files on loopback only (the page needs nothing else:
 * training, sampling and attention all run in the browser). Resolves once listening.
 */
export function servePlayground(dir: string, port: number, host = '127.0.0.1'): Promise<Server> {
  if (!existsSync(join(dir, 'index.html'))) {
    throw new UserError(`the playground is not built (no ${join(dir, 'index.html')}): run npm run build:web first`);
  }
  const root = resolve(dir);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let path: string;
    try {
      path = normalize(join(root, decodeURIComponent(url.pathname)));
    } catch {
      res.writeHead(400).end('bad path');
      return;
    }
    if (path !== root && !path.startsWith(root + sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    if (existsSync(path) && statSync(path).isDirectory()) path = join(path, 'index.html');
    if (!existsSync(path)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(readFileSync(path));
  });
  return new Promise((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => fail(e.code === 'EADDRINUSE' ? new UserError(`port ${port} is in use: pick another with --port`) : e));
    server.listen(port, host, () => ok(server));
  });
}

export function webCommand(): Command {
  return new Command('web')
    .description('serve the browser playground (train, sample and see attention in the page) on loopback')
    .option('--port <n>', 'port to listen on (0 = any free port)', int, 8080)
    .option('--dir <dir>', 'the built playground (default: dist/playground, made by npm run build:web)')
    .action(async (o: { port: number; dir?: string }) => {
      if (o.port < 0 || o.port > 65535) throw new UserError(`--port must be 0–65535, got ${o.port}`);
      const server = await servePlayground(o.dir ?? PLAYGROUND_DIR, o.port);
      const { port } = server.address() as AddressInfo;
      process.stdout.write(`attn playground: http://127.0.0.1:${port}/  (Ctrl-C to stop)\n`);
    });
}
