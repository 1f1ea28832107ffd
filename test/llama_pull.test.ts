import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pullModel } from '../src/io/hf_pull.js';
import { loadModel } from '../src/io/model_dir.js';
import { Llama } from '../src/models/llama.js';
import { noGrad } from '../src/tensor/autograd.js';
import { HFTokenizer } from '../src/tokenizers/hf/pipeline.js';
import { UserError } from '../src/util/errors.js';
import { chatTokenizerFiles, llamaTensors, tinyLlama, writeHFLlamaDir } from './llama_fixture.js';
import { closeLocally, listenLocally } from './helpers.js';
import { writeSafetensors } from '../src/io/safetensors.js';

const work = mkdtempSync(join(tmpdir(), 'attn-llama-pull-'));
after(() => rmSync(work, { recursive: true, force: true }));
const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');
const hub = join(work, 'hub');
const ids = Int32Array.of(3, 14, 15, 92, 65);
const logitsOf = (dir: string) => noGrad(() => loadModel(dir).model.forward(ids, [1, ids.length]).logits.data);
const userError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

/** Repositories on the local hub, as `me/NAME`. */
function repo(name: string): string {
  return join(hub, 'me', name);
}

describe('attn pull of Llama-family repositories from a local hub', () => {
  let server: Server;
  let endpoint = '';
  /** Every path the hub was asked for. */
  const requests: string[] = [];
  before(async () => {
    const generation = JSON.stringify({ bos_token_id: 96, eos_token_id: [97, 98] });
    writeHFLlamaDir(repo('sharded'), tinyLlama(), { ...chatTokenizerFiles(), 'generation_config.json': generation }, 3);
    writeHFLlamaDir(repo('single'), tinyLlama({ tie_word_embeddings: false }, 9), chatTokenizerFiles());
    writeHFLlamaDir(repo('slow'), tinyLlama({ tie_word_embeddings: false }, 9), chatTokenizerFiles());
    // config.json of an architecture attn does not run, with weights it must never fetch.
    writeHFLlamaDir(repo('phi'), tinyLlama());
    const cfg = JSON.parse(readFileSync(join(repo('phi'), 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(repo('phi'), 'config.json'), JSON.stringify({ ...cfg, model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }));
    // An index naming a shard the repository lacks; an index whose shard holds a tensor it does not list.
    writeHFLlamaDir(repo('missing-shard'), tinyLlama(), chatTokenizerFiles(), 2);
    rmSync(join(repo('missing-shard'), 'model-00002-of-00002.safetensors'));
    writeHFLlamaDir(repo('stray'), tinyLlama(), chatTokenizerFiles(), 2);
    const tensors = llamaTensors(tinyLlama());
    writeSafetensors(join(repo('stray'), 'model-00002-of-00002.safetensors'), new Map([...tensors].slice(Math.ceil(tensors.size / 2) - 1)));
    // An index that tries to write outside the download folder.
    mkdirSync(repo('escape'), { recursive: true });
    writeFileSync(join(repo('escape'), 'config.json'), readFileSync(join(repo('single'), 'config.json')));
    writeFileSync(join(repo('escape'), 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.norm.weight': '../evil.safetensors' } }));

    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
      const path = m ? join(hub, m[1]!, m[2]!) : '';
      if (!path || !existsSync(path)) {
        res.writeHead(404);
        return res.end('not found');
      }
      const body = readFileSync(path);
      res.writeHead(200, { 'content-length': body.length });
      // me/slow's weights stop coming halfway: a download to interrupt.
      if (m![1] === 'me/slow' && m![2] === 'model.safetensors') return void res.write(body.subarray(0, body.length >> 1));
      res.end(body);
    });
    endpoint = await listenLocally(server);
  });
  after(() => closeLocally(server));

  it('a sharded repository: the index, every shard it names, the tokenizer and generation files; same logits', async () => {
    const out = join(work, 'pulled-sharded');
    const progress = new Map<string, number>();
    const files = await pullModel({ name: 'me/sharded', out, endpoint, onProgress: (f, n, total) => (assert.equal(total, readFileSync(join(repo('sharded'), f)).length), progress.set(f, n)) });
    const shards = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    assert.deepEqual(files, ['config.json', 'model.safetensors.index.json', ...shards, 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']);
    assert.deepEqual(readdirSync(out).sort(), [...files].sort());
    for (const f of files) assert.equal(progress.get(f), readFileSync(join(repo('sharded'), f)).length, `progress of ${f} reaches its size`);
    const loaded = loadModel(out);
    assert.ok(loaded.model instanceof Llama && loaded.tokenizer instanceof HFTokenizer);
    assert.deepEqual(logitsOf(out), logitsOf(repo('sharded')));
    assert.ok(!readdirSync(work).some((f) => f.includes('.tmp-')), 'no temporary folder left');
  });

  it('a single-file repository through the CLI, with progress on stderr', async () => {
    const child = spawn(process.execPath, [CLI, 'pull', 'me/single', '--out', 'pulled-single', '--endpoint', endpoint], { cwd: work });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, stderr);
    assert.match(stderr, /model\.safetensors: [\d.]+ \/ [\d.]+ MB/);
    assert.match(stdout, /wrote pulled-single: config\.json, model\.safetensors, tokenizer\.json, tokenizer_config\.json/);
    assert.deepEqual(logitsOf(join(work, 'pulled-single')), logitsOf(repo('single')));
  });

  it('refuses an unknown architecture before fetching any weights', async () => {
    requests.length = 0;
    await assert.rejects(pullModel({ name: 'me/phi', out: join(work, 'p-phi'), endpoint }), userError(/me\/phi: architecture "phi3" is not supported \(attn pulls gpt2, LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM models\)/));
    assert.deepEqual(requests, ['/me/phi/resolve/main/config.json']);
    assert.ok(!existsSync(join(work, 'p-phi')));
  });

  it('shards missing or disagreeing with the index, and shard names outside the folder, leave nothing behind', async () => {
    await assert.rejects(pullModel({ name: 'me/missing-shard', out: join(work, 'p-missing'), endpoint }), userError(/shard model-00002-of-00002\.safetensors, named by model\.safetensors\.index\.json, not found/));
    await assert.rejects(pullModel({ name: 'me/stray', out: join(work, 'p-stray'), endpoint }), userError(/model-00002-of-00002\.safetensors: holds tensor \S+, which model\.safetensors\.index\.json does not place there/));
    requests.length = 0;
    await assert.rejects(pullModel({ name: 'me/escape', out: join(work, 'p-escape'), endpoint }), userError(/names "\.\.\/evil\.safetensors", not a \.safetensors file name/));
    assert.ok(!requests.some((r) => r.includes('evil')));
    for (const d of ['p-missing', 'p-stray', 'p-escape']) assert.ok(!existsSync(join(work, d)));
    assert.ok(!existsSync(join(work, 'evil.safetensors')));
    assert.ok(!readdirSync(work).some((f) => f.includes('.tmp-')));
  });

  it('Ctrl-C during a download removes its folder; what a killed pull left is removed by the next one', async () => {
    const child = spawn(process.execPath, [CLI, 'pull', 'me/slow', '--out', 'pulled-slow', '--endpoint', endpoint], { cwd: work });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Halfway: the weights file is begun in the temp folder (progress on stderr is throttled, so it is not the sign).
    const begun = () => readdirSync(work).some((f) => f.startsWith('pulled-slow.tmp-') && existsSync(join(work, f, 'model.safetensors')));
    for (let waited = 0; !begun(); waited += 20) {
      assert.ok(waited < 60_000 && child.exitCode === null, `the download did not begin: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const tmp = readdirSync(work).filter((f) => f.startsWith('pulled-slow.tmp-'));
    assert.equal(tmp.length, 1, 'the download is in its temp folder');
    child.kill('SIGINT');
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('close', (c, s) => r([c, s])));
    assert.equal(signal, 'SIGINT', `ended by the signal, as without the cleanup (code ${code}): ${stderr}`);
    assert.ok(!readdirSync(work).some((f) => f.startsWith('pulled-slow')), 'nothing left of the interrupted pull');

    // A pull killed outright (SIGKILL: no cleanup runs) left a temp folder, and a save swap its old copy.
    const out = join(work, 'pulled-again');
    const dead = 2147483646; // no process has this id
    for (const stale of [`pulled-again.tmp-${dead}`, `pulled-again.old-${dead}`]) mkdirSync(join(work, stale, 'inside'), { recursive: true });
    mkdirSync(join(work, `pulled-again.tmp-${process.pid}x`)); // not a temp name: kept
    await pullModel({ name: 'me/single', out, endpoint });
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('pulled-again')).sort(), ['pulled-again', `pulled-again.tmp-${process.pid}x`]);
  });
});
