import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runExport } from '../src/cli/export.js';
import { runInspect } from '../src/cli/inspect.js';
import { runMerge } from '../src/cli/merge.js';
import { runQuantize } from '../src/cli/quantize.js';
import { runTokenize, runTokenizerTrain, type TokenizeCliOptions } from '../src/cli/tokenize.js';
import { fablesCorpus } from '../src/data/fables.js';
import { pullModel, type PullOptions } from '../src/io/hf_pull.js';
import { loadModel } from '../src/io/model_dir.js';
import { saveAdapter } from '../src/io/peft.js';
import { addLoRA } from '../src/nn/lora.js';
import { UserError } from '../src/util/errors.js';
import { assertUserError, closeLocally, listenLocally, runAttn, type CliResult } from './helpers.js';

// An audit of export, merge, quantize, pull, tokenize and inspect as a new user meets them: each wrong
// path, file or flag is one `attn: error:` line and a non-zero exit, and nothing of the user's is lost.
const work = mkdtempSync(join(tmpdir(), 'attn-cli-io-audit-'));
after(() => rmSync(work, { recursive: true, force: true }));
const attn = (args: string[]) => runAttn(args, work);
const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');

const text = join(work, 'text.txt');
const model = join(work, 'm'); // character tokens
const bpe = join(work, 'bpe'); // byte-level BPE: a tokenizer GGUF can carry
const TINY = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '4', '--eval-iters', '2', '--warmup-iters', '5', '--max-iters', '10', '--eval-interval', '10'];

before(() => {
  writeFileSync(text, fablesCorpus(20_000));
  for (const [out, extra] of [[model, []], [bpe, ['--tokenizer', 'bpe', '--vocab-size', '300']]] as const) {
    const r = attn(['train', '--data', text, '--out', out, ...TINY, ...extra]);
    assert.equal(r.code, 0, r.stderr);
  }
});

/** A user error in exactly one line of stderr, nothing on stdout. */
function oneLine(r: CliResult, pattern: RegExp): void {
  assertUserError(r, pattern);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing on stdout');
}

/** In-process: a UserError (which the CLI prints as its one line) matching `pattern`, with no newline in it. */
function refused(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, not ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    return true;
  });
}

const noTempLeft = (dir: string): void => assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], `no temp file in ${dir}`);

/** runTokenize's output. */
function tokenize(o: TokenizeCliOptions, input: string | undefined): string {
  let out = '';
  runTokenize(o, input, (s) => (out += s));
  return out;
}

const trainTokenizer = (out: string, special = ['<|endoftext|>']) => runTokenizerTrain({ data: text, vocabSize: 300, out, type: 'bpe', pattern: 'gpt2', special });

describe('--out and the source model', () => {
  it('an --out that holds the source model is refused, and the source stays (it was deleted)', () => {
    const parent = join(work, 'parent');
    mkdirSync(parent);
    cpSync(model, join(parent, 'inner'), { recursive: true });
    writeFileSync(join(parent, 'config.json'), readFileSync(join(model, 'config.json'))); // the parent looks like a model directory
    oneLine(attn(['quantize', '--model', join(parent, 'inner'), '--out', parent]), /--out .*parent holds the source model .*inner, which writing it would delete/);
    refused(() => runExport({ model: join(parent, 'inner'), to: 'hf', out: parent }), /holds the source model/);
    assert.ok(existsSync(join(parent, 'inner', 'model.safetensors')));
  });

  it('an --out inside the source model\'s directory is refused (its next save would replace it)', () => {
    const before = readdirSync(model).sort();
    refused(() => runExport({ model, to: 'hf', out: join(model, 'hf') }), /--out .*hf lies inside the source model's directory/);
    refused(() => runExport({ model, to: 'gguf', out: join(model, 'm.gguf') }), /lies inside the source model's directory/);
    refused(() => runQuantize({ model, out: join(model, 'q', 'deeper') }), /lies inside the source model's directory/);
    refused(() => runMerge({ model, adapter: join(work, 'none'), out: join(model, 'merged') }), /lies inside the source model's directory/);
    assert.deepEqual(readdirSync(model).sort(), before);
  });

  it('an empty --out is one line before any work, and leaves no temp folder (it was a stack trace)', () => {
    oneLine(attn(['export', '--model', model, '--out', '']), /--out is empty: give a directory/);
    oneLine(attn(['inspect', '--model', model, '--data', text, '--out', '']), /--out is empty/);
    refused(() => runQuantize({ model, out: '' }), /--out is empty: give a directory/);
    refused(() => runExport({ model, to: 'gguf', out: '' }), /--out is empty: give a file name/);
    refused(() => trainTokenizer(''), /--out is empty: give a file name/);
    noTempLeft(work);
  });
});

describe('output files that exist', () => {
  it('export --to gguf replaces an earlier GGUF file, not a file of another kind', () => {
    const notes = join(work, 'notes.txt');
    writeFileSync(notes, 'mine');
    refused(() => runExport({ model, to: 'gguf', out: notes }), /--out .*notes\.txt exists and is not a GGUF file/);
    assert.equal(readFileSync(notes, 'utf8'), 'mine');
    const gguf = join(work, 'again.gguf');
    for (let i = 0; i < 2; i++) runExport({ model, to: 'gguf', out: gguf });
  });

  it('tokenizer train replaces an earlier tokenizer, not another file nor a model\'s own tokenizer', () => {
    const config = join(work, 'config-copy.json');
    writeFileSync(config, readFileSync(join(model, 'config.json')));
    refused(() => trainTokenizer(config), /exists and is not a tokenizer\.json/);
    const modelTokenizer = readFileSync(join(model, 'tokenizer.json'), 'utf8');
    refused(() => trainTokenizer(join(model, 'tokenizer.json')), /is in a model directory, whose tokenizer must match its weights/);
    assert.equal(readFileSync(join(model, 'tokenizer.json'), 'utf8'), modelTokenizer);
    const tok = join(work, 'tok.json');
    for (let i = 0; i < 2; i++) trainTokenizer(tok);
  });
});

describe('tokenize and tokenizer train', () => {
  it('reads the tokenizer the model loads with: a GGUF file\'s, and attn_tokenizer.json of an exported GPT-2 directory', () => {
    const gguf = join(work, 'bpe.gguf');
    runExport({ model: bpe, to: 'gguf', out: gguf });
    const want = tokenize({ model: bpe, json: true }, 'Once upon a time');
    assert.equal(tokenize({ model: gguf, json: true }, 'Once upon a time'), want);
    assert.equal(tokenize({ tokenizer: gguf, json: true }, 'Once upon a time'), want);
    const hf = join(work, 'char-hf');
    runExport({ model, to: 'hf', out: hf });
    assert.ok(existsSync(join(hf, 'attn_tokenizer.json')));
    assert.equal(tokenize({ model: hf, json: true }, 'Once'), tokenize({ model, json: true }, 'Once'));
  });

  it('a missing model directory, a file, a GGUF without a tokenizer and --decode with --json are named as such', () => {
    refused(() => tokenize({ model: join(work, 'nowhere') }, 'hi'), /model directory .*nowhere does not exist/);
    refused(() => tokenize({ model: text }, 'hi'), /text\.txt is a file, not a model directory/);
    const charGGUF = join(work, 'char.gguf'); // the char tokenizer has no GGUF form
    runExport({ model, to: 'gguf', out: charGGUF });
    refused(() => tokenize({ model: charGGUF }, 'hi'), /char\.gguf holds no tokenizer/);
    refused(() => tokenize({ model: bpe, decode: true, json: true }, '1 2'), /--json prints the ids of encoded text; --decode prints text/);
  });

  it('an empty or repeated --special is refused before training (an empty one ran out of memory)', () => {
    // Through the CLI with a time limit: without the check, training never ends.
    const r = spawnSync(process.execPath, [CLI, 'tokenizer', 'train', '--data', text, '--vocab-size', '300', '--out', join(work, 'sp.json'), '--special', ''], { cwd: work, encoding: 'utf8', timeout: 20_000 });
    oneLine({ code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }, /--special: a special token cannot be empty/);
    refused(() => trainTokenizer(join(work, 'sp.json'), ['<a>', '<b>', '<a>']), /--special: "<a>" is given twice/);
    assert.ok(!existsSync(join(work, 'sp.json')));
  });

  it('--chat with a file that is not JSON is one line (Node quotes the text, newline included)', () => {
    const bad = join(work, 'messages.json');
    writeFileSync(bad, 'garbage\nmore');
    refused(() => tokenize({ model: bpe, chat: bad }, undefined), /messages\.json: invalid JSON/);
  });
});

describe('bad model and adapter files', () => {
  it('a config.json or adapter_config.json that is not JSON is one line', () => {
    const broken = join(work, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'config.json'), 'garbage\n');
    oneLine(attn(['quantize', '--model', broken, '--out', join(work, 'bq')]), /config\.json: invalid JSON/);
    const adapter = join(work, 'broken-adapter');
    mkdirSync(adapter);
    writeFileSync(join(adapter, 'adapter_config.json'), 'garbage\n');
    refused(() => runMerge({ model, adapter, out: join(work, 'bm') }), /adapter_config\.json: invalid JSON/);
  });

  it('merge into an int8 model says to merge into the fp32 one (it spoke of training adapters)', () => {
    const adapter = join(work, 'adapter');
    const { model: m } = loadModel(model);
    addLoRA(m, { r: 2, alpha: 4, targets: ['c_attn'] });
    saveAdapter(m, adapter);
    const q = join(work, 'm-int8');
    runQuantize({ model, out: q });
    refused(() => runMerge({ model: q, adapter, out: join(work, 'mq') }), /is int8-quantized \(attn quantize\): merge into the fp32 model/);
    assert.ok(!existsSync(join(work, 'mq')));
    assert.equal(runMerge({ model, adapter, out: join(work, 'merged') }).layers, 1);
  });
});

describe('inspect', () => {
  it('a trainer.json that is not JSON, or null, asks for --data (it was a stack trace); --seed below 0 is refused', () => {
    const copy = join(work, 'm-copy');
    cpSync(model, copy, { recursive: true });
    const o = { model: copy, out: join(work, 'ins'), seed: 0, windows: 16, mapLength: 24, top: 3, images: 64, examples: 32, backend: 'js' };
    for (const content of ['garbage\n', 'null']) {
      writeFileSync(join(copy, 'trainer.json'), content);
      refused(() => runInspect(o), /give --data FILE: .* records no training text/);
    }
    assertUserError(attn(['inspect', '--model', model, '--data', text, '--out', join(work, 'ins'), '--seed', '-1']), /must be a whole number from 0 to 4294967295/);
    assert.ok(!existsSync(join(work, 'ins')));
  });
});

describe('pull', () => {
  let server: Server;
  let endpoint = '';
  before(async () => {
    const hf = join(work, 'pull-src');
    runExport({ model, to: 'hf', out: hf });
    const config = readFileSync(join(hf, 'config.json'));
    server = createServer((req, res) => {
      if (req.url?.endsWith('/config.json')) {
        res.writeHead(200, { 'content-length': config.length });
        return res.end(config);
      }
      if (req.url?.endsWith('/model.safetensors')) {
        // A connection that breaks after the first kilobyte of a 100 kB file.
        res.writeHead(200, { 'content-length': 100_000 });
        res.write(Buffer.alloc(1000));
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      }
      res.writeHead(404);
      res.end();
    });
    endpoint = await listenLocally(server);
  });
  after(() => closeLocally(server));

  /** The CLI, without blocking this process's event loop (the hub runs in it). */
  function pull(args: string[]): Promise<CliResult> {
    const child = spawn(process.execPath, [CLI, 'pull', ...args], { cwd: work });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((r) => child.on('close', (code) => r({ code: code ?? -1, stdout, stderr })));
  }

  it('a connection lost mid-file is one line of its own, after the progress line (it was an uncaught "aborted")', async () => {
    const r = await pull(['me/x', '--out', 'pulled', '--endpoint', endpoint]);
    assertUserError(r, /\nattn: error: \S+model\.safetensors: connection lost after 1000 of 100000 bytes/);
    assert.ok(!existsSync(join(work, 'pulled')));
    noTempLeft(work);
  });

  it('an --endpoint that is not an http(s) URL, and an empty --revision, are refused before anything is made', async () => {
    const rejected = (o: Partial<PullOptions>, pattern: RegExp) => assert.rejects(pullModel({ name: 'me/x', out: join(work, 'p1'), endpoint, ...o }), (e: unknown) => e instanceof UserError && pattern.test(e.message));
    await rejected({ endpoint: 'http://[bad' }, /--endpoint http:\/\/\[bad: not a URL/);
    await rejected({ endpoint: 'ftp://host' }, /attn fetches over http or https, not ftp/);
    await rejected({ revision: '' }, /--revision is empty/);
    assert.ok(!existsSync(join(work, 'p1')));
    noTempLeft(work);
  });
});
