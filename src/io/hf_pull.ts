import { createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { basename, dirname, join, sep } from 'node:path';
import { fsyncDir, removeStaleSiblings } from './atomic.js';
import { removedIfInterrupted } from './interrupt_cleanup.js';
import { UserError } from '../util/errors.js';
import { loadModel } from './model_dir.js';
import { HF_LLAMA_ARCHITECTURES, hfLlamaFamily } from '../models/llama_config.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

const INDEX_FILE = 'model.safetensors.index.json';
/** Tokenizer and generation files, fetched when the repository has them: GPT-2's come in either form. */
const TOKENIZER_FILES: Record<'gpt2' | 'llama', string[]> = {
  gpt2: ['tokenizer.json', 'vocab.json', 'merges.txt', 'tokenizer_config.json', 'generation_config.json'],
  llama: ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'],
};

export interface PullOptions {
  /** Repository name on the hub, e.g. "openai-community/gpt2" or "HuggingFaceTB/SmolLM2-135M-Instruct". */
  name: string;
  out: string;
  /** Hub address (default: $HF_ENDPOINT or https://huggingface.co). Tests point it at a local server. */
  endpoint?: string;
  revision?: string;
  onProgress?: (file: string, bytes: number, total: number | null) => void;
}

/**
 * Download a Hugging Face repository of a model attn runs — GPT-2, or the
 * Llama family (LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM) —
 * into `out`, the one command of attn that uses the network. config.json
 * comes first and decides: another architecture is refused before any weight
 * is fetched. Weights are model.safetensors, or the shards that
 * model.safetensors.index.json names; then the tokenizer files. Files land in
 * a temporary sibling directory, which is checked by loading it as a model
 * and then renamed into place, so `out` is never half-written.
 */
export async function pullModel(o: PullOptions): Promise<string[]> {
  if (!/^\w[\w.-]*(\/\w[\w.-]*)?$/.test(o.name)) throw new UserError(`"${o.name}" is not a Hugging Face repository name (like openai-community/gpt2)`);
  const endpoint = hubAddress(o.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT, o.endpoint !== undefined ? '--endpoint' : 'HF_ENDPOINT');
  if (o.revision !== undefined && o.revision.trim() === '') throw new UserError('--revision is empty: give a branch, tag or commit (main)');
  const base = `${endpoint}/${o.name}/resolve/${encodeURIComponent(o.revision ?? 'main')}/`;
  const tmp = join(dirname(o.out), `${basename(o.out)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const got = await removedIfInterrupted(tmp, () => downloadInto(tmp, base, endpoint, o));
  try {
    if (existsSync(o.out)) rmSync(o.out, { recursive: true });
    renameSync(tmp, o.out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncDir(dirname(o.out));
  removeStaleSiblings(o.out); // an earlier pull killed mid-download left its folder
  return got;
}

/** Fetch the repository's files into `tmp` and check them by loading them as a model; the folder is removed on failure. */
async function downloadInto(tmp: string, base: string, endpoint: string, o: PullOptions): Promise<string[]> {
  const got: string[] = [];
  const fetchFile = async (file: string): Promise<boolean> => {
    const ok = await download(base + file, join(tmp, file), (n, total) => o.onProgress?.(file, n, total));
    if (ok) got.push(file);
    return ok;
  };
  try {
    if (!(await fetchFile('config.json'))) throw new UserError(`${o.name}: config.json not found at ${endpoint} (is the name right? attn pulls GPT-2 and Llama-family models)`);
    const family = familyOf(join(tmp, 'config.json'), o.name);
    const weights = await weightFiles(fetchFile, tmp, o.name, endpoint);
    for (const file of weights) {
      if (await fetchFile(file)) continue;
      throw new UserError(file === 'model.safetensors'
        ? `${o.name}: neither model.safetensors nor ${INDEX_FILE} found at ${endpoint} (attn reads safetensors weights, not pytorch_model.bin)`
        : `${o.name}: shard ${file}, named by ${INDEX_FILE}, not found at ${endpoint}`);
    }
    for (const file of TOKENIZER_FILES[family]) await fetchFile(file);
    fsyncDir(tmp);
    loadDownloaded(tmp, o.name); // refuses bad shapes, shards that disagree with the index and mismatched tokenizers before anything is replaced
    return got;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The hub's address without trailing slashes; one that is not an http(s) URL is refused before anything is made. */
function hubAddress(endpoint: string, from: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UserError(`${from} ${endpoint}: not a URL (like https://huggingface.co)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError(`${from} ${endpoint}: attn fetches over http or https, not ${url.protocol.slice(0, -1)}`);
  return endpoint.replace(/\/+$/, '');
}

/** Load the downloaded files as a model; its errors name the repository's files, not the temporary folder they are in. */
function loadDownloaded(tmp: string, name: string): void {
  try {
    loadModel(tmp);
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    throw new UserError(`${name}: ${e.message.split(tmp + sep).join('').split(tmp).join('the download')}`);
  }
}

/** Which kind of repository config.json describes; any other architecture is refused here, before the weights. */
function familyOf(path: string, name: string): 'gpt2' | 'llama' {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${name}: config.json is not valid JSON: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${name}: config.json is not a JSON object`);
  const config = raw as Record<string, unknown>;
  if (config.model_type === 'gpt2') return 'gpt2';
  if (hfLlamaFamily(config)) return 'llama';
  const arch = config.model_type ?? (Array.isArray(config.architectures) ? config.architectures[0] : undefined) ?? 'unknown';
  throw new UserError(`${name}: architecture "${String(arch)}" is not supported (attn pulls gpt2, ${Object.keys(HF_LLAMA_ARCHITECTURES).join(', ')} models)`);
}

/**
 * The weight files to fetch: the shards model.safetensors.index.json names
 * (each once, in order), or model.safetensors when there is no index.
 * A shard name must be a plain file name: it becomes a path in `out`.
 */
async function weightFiles(fetchFile: (file: string) => Promise<boolean>, tmp: string, name: string, endpoint: string): Promise<string[]> {
  if (!(await fetchFile(INDEX_FILE))) return ['model.safetensors'];
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(readFileSync(join(tmp, INDEX_FILE), 'utf8')) as { weight_map?: unknown };
  } catch (e) {
    throw new UserError(`${name}: ${INDEX_FILE} is not valid JSON: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new UserError(`${name}: ${INDEX_FILE} has no "weight_map" object`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const shard of shards) {
    if (typeof shard !== 'string' || !/^[\w.-]+\.safetensors$/.test(shard) || shard.startsWith('.')) {
      throw new UserError(`${name}: ${INDEX_FILE} names ${JSON.stringify(shard)}, not a .safetensors file name (at ${endpoint})`);
    }
  }
  if (shards.length === 0) throw new UserError(`${name}: ${INDEX_FILE} names no shards`);
  return shards as string[];
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
    // A connection reset mid-file ("aborted") or a full disk is the user's network or machine, not a bug: one line.
    res.on('error', (e) => reject(new UserError(`${url}: connection lost after ${bytes}${total !== null ? ` of ${total}` : ''} bytes (${e.message})`)));
    file.on('error', (e) => reject(new UserError(`cannot write ${basename(path)}: ${e.message}`)));
    file.on('finish', resolve);
    res.pipe(file);
  });
  if (total !== null && bytes !== total) throw new UserError(`${url}: connection closed after ${bytes} of ${total} bytes`);
  const fd = openSync(path, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  return true;
}
