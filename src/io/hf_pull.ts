import { createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, closeSync, renameSync, rmSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { basename, dirname, join } from 'node:path';
import { fsyncDir } from './atomic.js';
import { UserError } from '../util/errors.js';
import { loadModel } from './model_dir.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Files of a GPT-2 repository: the first two must exist; tokenizers come in either form. */
const REQUIRED = ['config.json', 'model.safetensors'];
const OPTIONAL = ['tokenizer.json', 'vocab.json', 'merges.txt', 'tokenizer_config.json', 'generation_config.json'];

export interface PullOptions {
  /** Repository name on the hub, e.g. "openai-community/gpt2". */
  name: string;
  out: string;
  /** Hub address (default: $HF_ENDPOINT or https://huggingface.co). Tests point it at a local server. */
  endpoint?: string;
  revision?: string;
  onProgress?: (file: string, bytes: number, total: number | null) => void;
}

/**
 * Download a Hugging Face GPT-2 repository (weights as safetensors, config,
 * tokenizer files) into `out`, the one command of attn that uses the network.
 * Files land in a temporary sibling directory, which is checked by loading
 * it as a model and then renamed into place, so `out` is never half-written.
 */
export async function pullModel(o: PullOptions): Promise<string[]> {
  if (!/^\w[\w.-]*(\/\w[\w.-]*)?$/.test(o.name)) throw new UserError(`"${o.name}" is not a Hugging Face repository name (like openai-community/gpt2)`);
  const endpoint = (o.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const base = `${endpoint}/${o.name}/resolve/${encodeURIComponent(o.revision ?? 'main')}/`;
  const tmp = join(dirname(o.out), `${basename(o.out)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const got: string[] = [];
  try {
    for (const file of [...REQUIRED, ...OPTIONAL]) {
      const ok = await download(base + file, join(tmp, file), (n, total) => o.onProgress?.(file, n, total));
      if (ok) got.push(file);
      else if (REQUIRED.includes(file)) throw new UserError(`${o.name}: ${file} not found at ${endpoint} (attn needs safetensors weights of a GPT-2 model)`);
    }
    fsyncDir(tmp);
    loadModel(tmp); // refuses other architectures, bad shapes and missing tokenizers' mismatches before anything is replaced
    if (existsSync(o.out)) rmSync(o.out, { recursive: true });
    renameSync(tmp, o.out);
    fsyncDir(dirname(o.out));
    return got;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function request(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : url.startsWith('http:') ? httpGet : null;
    if (!get) return reject(new UserError(`unsupported address ${url}`));
    get(url, { headers: { 'user-agent': 'attn' } }, resolve).on('error', (e) => reject(new UserError(`cannot reach ${new URL(url).origin}: ${e.message}`)));
  });
}

/** Fetch url into path (following redirects); false on 404. */
async function download(url: string, path: string, progress: (bytes: number, total: number | null) => void, redirects = 0): Promise<boolean> {
  const res = await request(url);
  const status = res.statusCode ?? 0;
  if (status >= 300 && status < 400 && res.headers.location) {
    res.resume();
    if (redirects >= 5) throw new UserError(`too many redirects fetching ${url}`);
    return download(new URL(res.headers.location, url).toString(), path, progress, redirects + 1);
  }
  if (status === 404) {
    res.resume();
    return false;
  }
  if (status === 401 || status === 403) {
    res.resume();
    throw new UserError(`${url}: access denied (HTTP ${status}); gated or private repositories are not supported`);
  }
  if (status !== 200) {
    res.resume();
    throw new UserError(`${url}: HTTP ${status}`);
  }
  const total = res.headers['content-length'] ? Number(res.headers['content-length']) : null;
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    const file = createWriteStream(path);
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      progress(bytes, total);
    });
    res.on('error', reject);
    file.on('error', reject);
    file.on('finish', resolve);
    res.pipe(file);
  });
  if (total !== null && bytes !== total) throw new UserError(`${url}: connection closed after ${bytes} of ${total} bytes`);
  const fd = openSync(path, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  return true;
}
