import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { servePlayground } from '../src/cli/web.js';
import { fablesCorpus } from '../src/data/fables.js';
import { loadGPT, modelFiles } from '../src/io/model_dir.js';
import { noGrad } from '../src/tensor/autograd.js';
import { parseSafetensors, serializeSafetensors } from '../src/io/safetensors_codec.js';
import { Session } from '../web/lib/session.js';

const work = mkdtempSync(join(tmpdir(), 'attn-web-'));
after(() => rmSync(work, { recursive: true, force: true }));

const text = fablesCorpus(20_000);
const SIZES = { n_layer: 2, n_head: 2, n_embd: 16, block_size: 16 };
const TRAIN = { lr: 1e-2, batchSize: 4, maxIters: 200, warmupIters: 5, evalIters: 2, seed: 3 };

describe('playground session (web/lib, what the worker runs)', () => {
  it('trains: the loss falls', () => {
    const s = Session.forText(text, SIZES, TRAIN);
    const before = s.evaluate();
    assert.ok(Math.abs(before.train - Math.log(s.tokenizer.vocabSize)) < 0.5, `starts near chance: ${before.train}`);
    for (let i = 0; i < 40; i++) s.trainStep();
    const afterTraining = s.evaluate();
    assert.equal(s.step, 40);
    assert.ok(afterTraining.val < before.val - 0.5, `val loss ${before.val} → ${afterTraining.val}`);
  });

  it('samples one token at a time with top-k probabilities', () => {
    const s = Session.forText(text, SIZES, TRAIN);
    const ids = s.encode('The fox');
    const greedy = s.nextToken(ids, 0, 5);
    assert.equal(greedy.top.length, 5);
    assert.equal(greedy.id, greedy.top[0]!.id, 'greedy takes the most likely token');
    for (let i = 1; i < 5; i++) assert.ok(greedy.top[i - 1]!.p >= greedy.top[i]!.p);
    const k1 = s.nextToken(ids, 1, 1);
    assert.equal(k1.top.length, 1);
    assert.ok(Math.abs(k1.top[0]!.p - 1) < 1e-6);
    const all = s.nextToken(ids, 1, 0);
    assert.equal(all.top.length, Math.min(10, s.tokenizer.vocabSize));
    // a context longer than block_size is cropped, not an error
    assert.doesNotThrow(() => s.nextToken(s.encode(text.slice(0, 100)), 0.8, 10));
  });

  it('attention maps: causal, rows sum to 1, and they reproduce the layer\'s output', () => {
    const s = Session.forText(text, SIZES, TRAIN);
    for (let i = 0; i < 5; i++) s.trainStep();
    const ids = s.encode('The wolf ran');
    const maps = s.attention(ids);
    const T = ids.length;
    const { n_head: H, n_embd: C } = s.config;
    assert.deepEqual(maps.tokens, Array.from('The wolf ran'));
    assert.equal(maps.weights.length, 2 * H * T * T);
    for (let r = 0; r < 2 * H * T; r++) {
      const i = r % T;
      let sum = 0;
      for (let j = 0; j < T; j++) {
        const w = maps.weights[r * T + j]!;
        if (j > i) assert.equal(w, 0, 'the causal mask: no weight on later tokens');
        sum += w;
      }
      assert.ok(Math.abs(sum - 1) < 1e-5);
    }
    // Σ_j w_ij v_j through c_proj must equal the attention layer of block 0.
    const m = s.model;
    noGrad(() => {
      const x = m.embed(ids, [1, T], Int32Array.from({ length: T }, (_, i) => i));
      const h = m.h[0]!.ln_1.forward(x);
      const qkv = m.h[0]!.attn.c_attn.forward(h).data;
      const y = new Float32Array(T * C);
      const hd = C / H;
      for (let hh = 0; hh < H; hh++)
        for (let i = 0; i < T; i++)
          for (let j = 0; j <= i; j++)
            for (let c = 0; c < hd; c++) y[i * C + hh * hd + c] += maps.weights[(hh * T + i) * T + j]! * qkv[j * 3 * C + 2 * C + hh * hd + c]!;
      const W = m.h[0]!.attn.c_proj.weight.data;
      const expected = m.h[0]!.attn.forward(h).data;
      for (let i = 0; i < T; i++)
        for (let o = 0; o < C; o++) {
          let v = m.h[0]!.attn.c_proj.bias?.data[o] ?? 0;
          for (let c = 0; c < C; c++) v += y[i * C + c]! * W[o * C + c]!;
          assert.ok(Math.abs(v - expected[i * C + o]!) < 1e-4, `out[${i},${o}] ${v} vs ${expected[i * C + o]}`);
        }
    });
  });

  it('saves the CLI\'s model directory format and loads it back', () => {
    const s = Session.forText(text, SIZES, TRAIN);
    for (let i = 0; i < 3; i++) s.trainStep();
    const files = s.toFiles();
    // the same bytes as the CLI's writer
    const cli = modelFiles(s.model, s.tokenizer);
    assert.equal(files['config.json'], cli['config.json']);
    assert.deepEqual(files['model.safetensors'], cli['model.safetensors']);
    assert.equal(files['tokenizer.json'], cli['tokenizer.json']);
    // the CLI loads what the page saves
    for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
    const loaded = loadGPT(work);
    assert.deepEqual(loaded.model.wte.weight.data, s.model.wte.weight.data);
    // and the page loads it back, weights and all
    const again = Session.fromFiles(files, TRAIN);
    const ids = s.encode('The ');
    assert.deepEqual(again.nextToken(ids, 0, 3).top, s.nextToken(ids, 0, 3).top);
  });

  it('safetensors round trip, and clear errors', () => {
    // The page uses the one pure codec (src/io/safetensors_codec.ts), the same bytes the CLI writes.
    const t = new Map([['a', { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -7]) }]]);
    const bytes = serializeSafetensors(t, { format: 'attn' });
    assert.equal(parseSafetensors(bytes).tensors.get('a')!.shape.join(), '2,3');
    assert.deepEqual(parseSafetensors(bytes).tensors.get('a')!.data, t.get('a')!.data);
    assert.throws(() => parseSafetensors(new Uint8Array(3)), /shorter than 8 bytes/);
    assert.throws(() => Session.fromFiles({ 'config.json': '{}', 'model.safetensors': bytes, 'tokenizer.json': '{}' }), /not an attn model config/);
    assert.throws(() => Session.forText(text, { ...SIZES, n_head: 3 }, TRAIN), /divisible/);
  });
});

describe('attn web: the static server', () => {
  it('serves the built page on loopback, with types, and nothing outside its folder', async () => {
    const site = join(work, 'site');
    mkdirSync(join(site, 'assets'), { recursive: true });
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(site, 'assets', 'a.js'), 'export {}');
    writeFileSync(join(work, 'secret.txt'), 'no');
    const server = await servePlayground(site, 0);
    try {
      const { address, port } = server.address() as AddressInfo;
      assert.equal(address, '127.0.0.1');
      const base = `http://127.0.0.1:${port}`;
      const index = await fetch(`${base}/`);
      assert.equal(index.status, 200);
      assert.match(index.headers.get('content-type')!, /text\/html/);
      const js = await fetch(`${base}/assets/a.js`);
      assert.match(js.headers.get('content-type')!, /javascript/);
      assert.equal((await fetch(`${base}/missing.js`)).status, 404);
      assert.notEqual((await fetch(`${base}/%2e%2e/secret.txt`)).status, 200);
      assert.notEqual((await fetch(`${base}/..%2fsecret.txt`)).status, 200);
    } finally {
      server.close();
    }
  });

  it('says how to build the page when it is missing', () => {
    assert.throws(() => servePlayground(join(work, 'nowhere'), 0), /npm run build:web/);
  });
});
