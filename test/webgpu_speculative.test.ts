import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { runSample } from '../src/cli/sample.js';
import { generate } from '../src/generate/engine.js';
import { SpeculativeDecoder, SpeculativeStats } from '../src/generate/speculative.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import type { GPT } from '../src/models/gpt.js';
import { moveToBackend } from '../src/nn/placement.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { startServer } from '../src/serve/server.js';
import { nearDraft, postJson, silentLogger, tinyGPT, tinyTokenizer } from './serve_fixture.js';
import { mostReadsInFlight, webgpuSkip } from './webgpu_helpers.js';

/*
 * Speculative decoding on webgpu (generate/speculative_device.ts): a round is
 * queued whole — the draft's steps fed their own picks on the device, the
 * target's verifying pass fed the drafts there — and read back once. The
 * tokens must be the target's own greedy tokens on js, whatever the draft
 * and k; all of a round's picks must be in flight together (one wait a
 * round, not one a token). Sampling with a draft reads each draft step
 * back and draws on the host: js's tokens for the same seed. SwiftShader
 * without a GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('WebGPU speculative decoding tests');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-spec-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

const PROMPTS = [[40, 41, 50, 60, 70], [33], [80, 81, 5, 2, 70, 71]];

/** Every row's tokens through SpeculativeDecoder.stepAsync (what streamText calls), on the current backend. */
async function speculate(target: GPT, draft: GPT, prompts: number[][], k: number, stats: SpeculativeStats, maxNewTokens = 24): Promise<number[][]> {
  const dec = new SpeculativeDecoder(target, prompts, { maxNewTokens, greedy: true, draft, k, stats });
  const out: number[][] = prompts.map(() => []);
  while (!dec.finished) (await dec.stepAsync()).forEach((id, b) => id !== null && out[b]!.push(id));
  return out;
}

describe('speculative decoding on webgpu', { skip }, () => {
  it('emits the target\'s own greedy tokens (js), for a perfect, a near and an unrelated draft, k 1 and 4, three rows together (and one at a time with the perfect draft)', async () => {
    setBackend('js');
    const N = 16;
    const want = PROMPTS.map((p) => [...generate(tinyGPT(3), p, { maxNewTokens: N, greedy: true })]);
    await selectBackendAsync('webgpu');
    try {
      const target = tinyGPT(3);
      const drafts = { self: tinyGPT(3), near: nearDraft(tinyGPT(3), 0.02), unrelated: tinyGPT(11) };
      moveToBackend(target);
      for (const d of Object.values(drafts)) moveToBackend(d);
      for (const [kind, draft] of Object.entries(drafts)) {
        for (const k of [1, 4]) {
          // One row at a time with the perfect draft (its rounds counted); every draft with the three rows together
          // (prompts of different lengths, rows accepting different numbers of drafts in one round).
          if (kind === 'self') {
            const stats = new SpeculativeStats();
            const alone = [];
            for (const p of PROMPTS) alone.push((await speculate(target, draft, [p], k, stats, N))[0]);
            assert.deepEqual(alone, want, `${kind} draft, k ${k}, one row at a time`);
            assert.equal(stats.acceptanceRate, 1, 'the target as its own draft is always right');
            assert.ok(stats.rounds <= Math.ceil((3 * N) / (k + 1)) + 3, `${stats.rounds} rounds for ${3 * N} tokens at k ${k}`);
          }
          assert.deepEqual(await speculate(target, draft, PROMPTS, k, new SpeculativeStats(), N), want, `${kind} draft, k ${k}, three rows together`);
        }
      }
    } finally {
      setBackend('js');
    }
  });

  it('queues a round before reading it: its k drafts and the verdict are all in flight at once', async () => {
    await selectBackendAsync('webgpu');
    try {
      const target = tinyGPT(3);
      moveToBackend(target);
      const k = 4;
      const stats = new SpeculativeStats();
      const most = await mostReadsInFlight(async () => void (await speculate(target, target, [PROMPTS[0]!], k, stats)));
      assert.ok(most >= k + 1, `${most} reads in flight at most (want the ${k} drafts and the verdict together)`);
      assert.equal(stats.emitted, 24);
    } finally {
      setBackend('js');
    }
  });

  it('samples with a draft as js does (the same seed, the same tokens: each draft step read back, drawn on the host), an int8 model included', async () => {
    const sampled = async (int8: boolean) => {
      const target = tinyGPT(3);
      const draft = nearDraft(tinyGPT(3), 0.05);
      if (int8) quantize(target);
      moveToBackend(target);
      moveToBackend(draft);
      const stats = new SpeculativeStats();
      const dec = new SpeculativeDecoder(target, PROMPTS, { maxNewTokens: 16, temperature: 0.9, topK: 20, seed: 7, draft, k: 3, stats });
      const out: number[][] = PROMPTS.map(() => []);
      while (!dec.finished) (await dec.stepAsync()).forEach((id, b) => id !== null && out[b]!.push(id));
      return { out, accepted: stats.accepted };
    };
    for (const int8 of [false, true]) {
      setBackend('js');
      const want = await sampled(int8);
      assert.ok(want.accepted > 0, 'the draft was right sometimes');
      await selectBackendAsync('webgpu');
      try {
        const got = await sampled(int8);
        assert.deepEqual(got.out, want.out, `int8 ${int8}`);
        assert.equal(got.accepted, want.accepted);
      } finally {
        setBackend('js');
      }
    }
  });

  it('attn sample --draft --backend webgpu: greedy, the same text as js without a draft; sampled, the same text as js with it', async () => {
    const targetDir = join(work, 'target');
    const draftDir = join(work, 'draft');
    writeDirAtomic(targetDir, modelFiles(tinyGPT(3), tinyTokenizer()));
    writeDirAtomic(draftDir, modelFiles(nearDraft(tinyGPT(3), 0.02), tinyTokenizer()));
    const sample = async (backend: string, flags: Record<string, unknown>) => {
      let out = '';
      try {
        await runSample({ model: targetDir, prompt: 'The cat', maxNewTokens: 30, seed: 3, temperature: 0, backend, ...flags }, (s) => (out += s));
      } finally {
        setBackend('js');
      }
      return out;
    };
    const want = await sample('js', {});
    assert.equal(await sample('webgpu', { draft: draftDir, draftK: 3 }), want);
    const sampledWant = await sample('js', { draft: draftDir, draftK: 3, temperature: 0.8 });
    assert.equal(await sample('webgpu', { draft: draftDir, draftK: 3, temperature: 0.8 }), sampledWant);
  });

  it('attn serve on webgpu with a draft in config.json: greedy requests, together in one batch, answer as js without a draft; sampled ones take plain steps', async () => {
    const dir = join(work, 'served');
    writeDirAtomic(dir, modelFiles(tinyGPT(3), tinyTokenizer()));
    const prompts = ['Hello there', 'The cat', 'abc'];
    const ask = (url: string, prompt: string, extra: Record<string, unknown> = {}) =>
      postJson(`${url}/v1/completions`, { model: 'served', prompt, max_tokens: 20, temperature: 0, ...extra });
    setBackend('js');
    const plain = await startServer({ models: [dir], port: 0, logger: silentLogger() });
    const want = await Promise.all(prompts.map(async (p) => (await ask(plain.url, p)).json.choices[0].text as string));
    const sampled = (await ask(plain.url, prompts[0]!, { temperature: 0.9, seed: 5 })).json.choices[0].text as string;
    await plain.close();
    writeDirAtomic(join(work, 'served-draft'), modelFiles(nearDraft(tinyGPT(3), 0.02), tinyTokenizer()));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), draft: '../served-draft', draft_k: 3 }));
    await selectBackendAsync('webgpu');
    const server = await startServer({ models: [dir], port: 0, logger: silentLogger() });
    try {
      const got = await Promise.all(prompts.map(async (p) => {
        const r = await ask(server.url, p);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        return r.json.choices[0].text as string;
      }));
      assert.deepEqual(got, want);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name}\\{model="served"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
      assert.ok(value('attn_speculative_drafted_tokens_total') > 0, 'the rounds ran on the device');
      assert.equal(value('attn_speculative_emitted_tokens_total'), 60);
      assert.equal((await ask(server.url, prompts[0]!, { temperature: 0.9, seed: 5 })).json.choices[0].text, sampled, 'a sampled request: plain steps, js\'s draws');
    } finally {
      await server.close();
      setBackend('js');
    }
  });
});
