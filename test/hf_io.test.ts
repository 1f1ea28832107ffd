import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { runExport } from '../src/cli/export.js';
import { runQuantize } from '../src/cli/quantize.js';
import { fablesCorpus } from '../src/data/fables.js';
import { perplexity } from '../src/eval/perplexity.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { UserError } from '../src/util/errors.js';
import { pullModel } from '../src/io/hf_pull.js';
import { loadGPT, modelFiles } from '../src/io/model_dir.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { dequantize, isQuantized, quantize, QuantizedLinear } from '../src/nn/quantized_linear.js';
import type { Linear } from '../src/nn/linear.js';
import { noGrad } from '../src/tensor/autograd.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { trainBPE } from '../src/tokenizers/bpe_train.js';
import type { Tokenizer } from '../src/tokenizers/tokenizer.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, closeLocally, hasShared, listenLocally, REFERENCE_DIR, referenceSkip, runAttn, torchMissing } from './helpers.js';

const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'attn-hfio-'));
after(() => rmSync(work, { recursive: true, force: true }));
setBackend('js');

const attn = (args: string[]) => runAttn(args, work);

const text = fablesCorpus(20_000);
const torchSkip = referenceSkip(torchMissing());

/** A saved random model of ours, with or without biases. */
function savedModel(name: string, tokenizer: Tokenizer, bias: boolean, blockSize = 32): string {
  const m = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: blockSize, vocab_size: tokenizer.vocabSize, bias }), new Rng(5));
  const r = new Rng(6);
  for (const p of m.parameters()) for (let i = 0; i < p.size; i++) p.data[i] = p.data[i]! + r.normal() * 0.05; // biases and norms off their init
  const dir = join(work, name);
  writeDirAtomic(dir, modelFiles(m, tokenizer));
  return dir;
}

function logits(m: GPT, ids: number[]): Float32Array {
  return noGrad(() => m.forward(Int32Array.from(ids), [1, ids.length]).logits.data);
}

const chars = CharTokenizer.fromText(text);
const bpe = trainBPE(text, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });

describe('export to Hugging Face GPT-2 layout', () => {
  for (const [tokName, tok, bias] of [['char', chars, false], ['bpe', bpe, true]] as const) {
    it(`round trip is exact (${tokName} tokenizer, bias ${bias})`, () => {
      const src = savedModel(`m-${tokName}`, tok, bias);
      const out = join(work, `hf-${tokName}`);
      const notes = runExport({ model: src, to: 'hf', out });
      const a = loadGPT(src);
      const b = loadGPT(out);
      assert.equal(b.source, 'hf-gpt2');
      const ids = Array.from(tok.encode('The fox and the crow'));
      assert.deepEqual(logits(b.model, ids), logits(a.model, ids));
      assert.deepEqual(b.tokenizer!.encode(text.slice(0, 500)), tok.encode(text.slice(0, 500)));
      // GPT-2's layout: Conv1D weights [in, out], config keys, biases always present.
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      assert.equal(cfg.model_type, 'gpt2');
      assert.deepEqual(cfg.architectures, ['GPT2LMHeadModel']);
      assert.equal(cfg.n_positions, 32);
      const file = readSafetensors(join(out, 'model.safetensors'));
      assert.equal(file.metadata.format, 'pt');
      assert.deepEqual(file.tensors.get('h.0.attn.c_attn.weight')!.shape, [16, 48]);
      const mine = a.model.h[0]!.attn.c_attn.weight;
      assert.equal(file.tensors.get('h.0.attn.c_attn.weight')!.data[1 * 48 + 2], mine.data[2 * 16 + 1]);
      assert.ok(file.tensors.has('h.1.mlp.c_fc.bias') && file.tensors.has('ln_f.bias'));
      if (tokName === 'bpe') {
        assert.ok(existsSync(join(out, 'vocab.json')) && existsSync(join(out, 'merges.txt')));
        assert.equal(notes.length, 0);
      } else assert.match(notes[0]!, /attn_tokenizer\.json/);
    });
  }

  it('PyTorch computes the same logits from the exported directory (GPT-2 Conv1D semantics)', { skip: torchSkip }, () => {
    const src = savedModel('m-torch', chars, false);
    const out = join(work, 'hf-torch');
    runExport({ model: src, to: 'hf', out });
    const ids = Array.from(chars.encode('The crow'));
    const r = spawnSync('/usr/bin/python3', [resolve(process.cwd(), 'test/python/gpt2_logits.py'), out, ...ids.map(String)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const theirs = (JSON.parse(r.stdout) as number[][]).flat();
    assertClose(logits(loadGPT(src).model, ids), theirs, 1e-4, 'attn vs PyTorch');
  });

  it('round trip of the GPT-2 reference model is exact', { skip: referenceSkip(!hasShared(REFERENCE_DIR) && 'reference dir absent') }, () => {
    const out = join(work, 'ref-export');
    runExport({ model: REFERENCE_DIR, to: 'hf', out });
    const a = loadGPT(REFERENCE_DIR).model;
    const b = loadGPT(out).model;
    const ids = [1, 5, 9, 2, 7, 3];
    assert.deepEqual(logits(b, ids), logits(a, ids));
  });
});

describe('int8 quantization', () => {
  it('saves int8 weights with per-channel scales and reloads them; logits stay close', () => {
    const src = savedModel('q-src', chars, true);
    const out = join(work, 'q-out');
    const { bytes } = runQuantize({ model: src, out });
    assert.ok(bytes < statSync(join(src, 'model.safetensors')).size / 2);
    const file = readSafetensors(join(out, 'model.safetensors'));
    assert.equal(file.tensors.get('h.0.mlp.c_fc.weight')!.dtype, 'I8');
    assert.deepEqual(file.tensors.get('h.0.mlp.c_fc.weight.scale')!.shape, [64]);
    assert.equal(file.tensors.get('wpe.weight')!.dtype, 'F32');
    const q = loadGPT(out).model;
    assert.ok(isQuantized(q));
    const ids = Array.from(chars.encode('The fox'));
    const viaInt8 = logits(q, ids);
    dequantize(q); // the same weights, dequantized, through the fp32 kernels
    assertClose(viaInt8, logits(q, ids), 1e-5, 'int8 kernels vs dequantized fp32');
    const orig = logits(loadGPT(src).model, ids);
    const maxDiff = Math.max(...orig.map((v, i) => Math.abs(v - viaInt8[i]!)));
    assert.ok(maxDiff > 0 && maxDiff < 0.05, `quantization error ${maxDiff}`);
    assert.throws(() => runQuantize({ model: out, out: join(work, 'q2') }), /already quantized/);
  });

  it('quantize rounds each row to its own scale', () => {
    const m = loadGPT(savedModel('q-rows', chars, false)).model;
    const w = Float32Array.from((m.h[0]!.mlp.c_proj as Linear).weight.data);
    quantize(m);
    const q = (m.h[0]!.mlp.c_proj as QuantizedLinear).weight;
    const [rows, cols] = q.shape;
    for (let r = 0; r < rows; r++) {
      let max = 0;
      for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(w[r * cols + c]!));
      assert.ok(Math.abs(q.scale[r]! - max / 127) < 1e-9);
      for (let c = 0; c < cols; c++) assert.ok(Math.abs(q.data[r * cols + c]! * q.scale[r]! - w[r * cols + c]!) <= q.scale[r]! / 2 + 1e-7);
    }
  });
});

describe('perplexity', () => {
  it('non-overlapping windows score every token once, as a direct computation does', () => {
    const m = loadGPT(savedModel('ppl', chars, true, 16)).model;
    const ids = chars.encode(text.slice(0, 97)); // 96 targets: six full windows of 16
    const r = perplexity(m, ids, { batchSize: 3 });
    assert.equal(r.tokens, ids.length - 1);
    let sum = 0;
    for (let s = 0; s < ids.length - 1; s += 16) {
      const end = Math.min(ids.length - 1, s + 16);
      const x = ids.slice(s, end);
      const y = ids.slice(s + 1, end + 1);
      sum += noGrad(() => m.forward(x, [1, x.length], y).loss!.item()) * x.length;
    }
    assert.ok(Math.abs(r.loss - sum / (ids.length - 1)) < 1e-5, `${r.loss} vs ${sum / (ids.length - 1)}`);
    assert.ok(Math.abs(r.perplexity - Math.exp(r.loss)) < 1e-9);
    const strided = perplexity(m, ids, { stride: 5 });
    assert.equal(strided.tokens, ids.length - 1);
    assert.throws(() => perplexity(m, ids, { window: 17 }), UserError);
    assert.throws(() => perplexity(m, ids.subarray(0, 1)), UserError);
  });

  it('attn eval prints loss and perplexity', () => {
    const dir = savedModel('ppl-cli', chars, true, 16);
    writeFileSync(join(work, 'eval.txt'), text.slice(0, 2000));
    const r = attn(['eval', '--model', dir, '--data', 'eval.txt', '--split', 'val', '--json', '--backend', 'js']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.split, 'val');
    assert.ok(Math.abs(j.perplexity - Math.exp(j.loss)) < 1e-6 && j.tokens > 100);
    assertUserError(attn(['eval', '--model', dir, '--data', 'absent.txt']), /cannot read data file/);
  });
});

describe('fine-tuning with train --init', () => {
  it('starts from the exported model and keeps its tokenizer', () => {
    const src = savedModel('init-src', bpe, true);
    const hf = join(work, 'init-hf');
    runExport({ model: src, to: 'hf', out: hf });
    writeFileSync(join(work, 'ft.txt'), text);
    const out = join(work, 'init-out');
    const r = attn(['train', '--init', hf, '--data', 'ft.txt', '--out', out, '--max-iters', '3', '--block-size', '16', '--batch-size', '2', '--eval-iters', '1', '--warmup-iters', '1', '--backend', 'js']);
    assert.equal(r.code, 0, r.stderr);
    const tuned = loadGPT(out);
    assert.deepEqual(tuned.config, { ...loadGPT(hf).config });
    assert.deepEqual(tuned.tokenizer!.encode(text.slice(0, 300)), bpe.encode(text.slice(0, 300)));
    // Three small steps from the pretrained weights: close to them, not equal, nowhere near a random init.
    const a = loadGPT(src).model.h[0]!.mlp.c_fc.weight.data;
    const b = tuned.model.h[0]!.mlp.c_fc.weight.data;
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    assert.ok(d > 0 && d < 0.01, `max change ${d}`);
    assertUserError(attn(['train', '--init', hf, '--resume', out, '--data', 'ft.txt']), /exclude each other/);
  });
});

describe('attn pull from a local hub', () => {
  let server: Server;
  let endpoint = '';
  const repo = join(work, 'hub');
  before(async () => {
    const src = savedModel('pull-src', bpe, true);
    runExport({ model: src, to: 'hf', out: join(repo, 'me', 'tiny') });
    mkdirSync(join(repo, 'me', 'bert'), { recursive: true });
    writeFileSync(join(repo, 'me', 'bert', 'config.json'), JSON.stringify({ model_type: 'bert', architectures: ['BertModel'] }));
    cpSync(join(repo, 'me', 'tiny', 'model.safetensors'), join(repo, 'me', 'bert', 'model.safetensors'));
    // /NAME/resolve/REV/FILE as the hub serves it; the weights through a redirect, as the hub's CDN does.
    server = createServer((req, res) => {
      const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
      if (m && m[2] === 'model.safetensors' && !req.url!.includes('cdn')) {
        res.writeHead(302, { location: `/cdn/${m[1]}/model.safetensors` });
        return res.end();
      }
      const cdn = /^\/cdn\/(.+)$/.exec(req.url ?? '');
      const path = cdn ? join(repo, cdn[1]!) : m ? join(repo, m[1]!, m[2]!) : '';
      if (!path || !existsSync(path)) {
        res.writeHead(404);
        return res.end('not found');
      }
      const body = readFileSync(path);
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    endpoint = await listenLocally(server);
  });
  after(() => closeLocally(server));

  it('downloads a GPT-2 directory that loads with the same logits', async () => {
    const out = join(work, 'pulled');
    const files = await pullModel({ name: 'me/tiny', out, endpoint });
    assert.deepEqual(files.sort(), ['config.json', 'merges.txt', 'model.safetensors', 'tokenizer_config.json', 'vocab.json']);
    const ids = [1, 2, 3, 4];
    assert.deepEqual(logits(loadGPT(out).model, ids), logits(loadGPT(join(repo, 'me', 'tiny')).model, ids));
    // Asynchronously: the server answering the child runs in this process.
    const child = spawn(process.execPath, [CLI, 'pull', 'me/tiny', '--out', 'pulled-cli', '--endpoint', endpoint], { cwd: work });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, stderr);
    assert.ok(existsSync(join(work, 'pulled-cli', 'vocab.json')));
  });

  it('refuses other architectures, missing repositories and bad names, leaving nothing behind', async () => {
    await assert.rejects(pullModel({ name: 'me/bert', out: join(work, 'p-bert'), endpoint }), /architecture "bert" is not supported/);
    await assert.rejects(pullModel({ name: 'me/absent', out: join(work, 'p-absent'), endpoint }), /config\.json not found/);
    await assert.rejects(pullModel({ name: '../etc', out: join(work, 'p-bad'), endpoint }), /not a Hugging Face repository name/);
    assert.ok(!existsSync(join(work, 'p-bert')) && !existsSync(join(work, 'p-absent')));
  });
});

describe('bad input to sample', () => {
  it('a model without a tokenizer, an over-long prompt, a bad stop string', () => {
    const src = savedModel('no-tok', chars, true, 8);
    const hf = join(work, 'no-tok-hf');
    runExport({ model: src, to: 'hf', out: hf });
    rmSync(join(hf, 'attn_tokenizer.json'));
    assertUserError(attn(['sample', '--model', hf, '--prompt', 'x']), /has no tokenizer/);
    const long = attn(['sample', '--model', src, '--prompt', 'The fox and the crow went', '--max-new-tokens', '3', '--backend', 'js']);
    assert.equal(long.code, 0, long.stderr);
    assert.match(long.stderr, /warning: prompt 0 has \d+ tokens but the model's context is 8: keeping its last 7/);
    assertUserError(attn(['sample', '--model', src, '--prompt', 'The fox and the crow went', '--strict-context']), /context is 8; shorten it/);
    assertUserError(attn(['sample', '--model', src, '--stop', '']), /--stop must not be empty/);
    assertUserError(attn(['sample', '--model', src, '--repetition-penalty', '0']), /--repetition-penalty must be > 0/);
  });
});
