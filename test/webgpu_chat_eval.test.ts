import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { runChat } from '../src/cli/chat.js';
import { runEval } from '../src/cli/eval.js';
import { chatTokenizerFiles, tinyLlama, writeHFLlamaDir } from './llama_fixture.js';
import { tinyModelDir } from './serve_fixture.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * `attn chat` and `attn eval` with --backend webgpu against js: the same
 * replies from a tiny grouped-query Llama chat model (greedy, and sampled
 * with a seed: the scores row is read back and drawn from on the host with
 * js's generator), and the same loss (rtol 1e-4). SwiftShader without a
 * GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('WebGPU chat and eval tests');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-chat-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

describe('attn chat and attn eval on webgpu', { skip }, () => {
  it('attn chat --backend webgpu: the replies js gives, greedy and sampled', async () => {
    const dir = join(work, 'llama');
    writeHFLlamaDir(dir, tinyLlama({ block_size: 256 }, 11), chatTokenizerFiles());
    const chat = async (backend: string, temperature: number) => {
      const out: string[] = [];
      try {
        await runChat({ model: dir, temperature, maxTokens: 12, seed: 4, backend, system: 'Be brief.' }, { input: Readable.from(['Hello there\nAnd then?\n']), write: (s) => out.push(s), note: () => {} });
      } finally {
        setBackend('js');
      }
      return out.join('');
    };
    for (const temperature of [0, 0.8]) {
      const want = await chat('js', temperature);
      assert.equal(want.split('\n').length, 3, `two replies: ${JSON.stringify(want)}`);
      assert.equal(await chat('webgpu', temperature), want, `temperature ${temperature}`);
    }
  });

  it('attn eval --backend webgpu: the loss js gives, over several batches of windows', async () => {
    const t = tinyModelDir('evalme', 3);
    try {
      const data = join(work, 'text.txt');
      writeFileSync(data, 'The cat sat on the mat. '.repeat(12));
      const args = { model: t.dir, data, split: 'all' as const, window: 32, stride: 24, batchSize: 2 };
      const js = await runEval({ ...args, backend: 'js' });
      const gpu = await runEval({ ...args, backend: 'webgpu' }).finally(() => setBackend('js'));
      assert.equal(gpu.tokens, js.tokens);
      assert.ok(js.tokens > 2 * 24 * 2, 'more than one batch of windows');
      assert.ok(Math.abs(gpu.loss - js.loss) <= 1e-4 * js.loss, `loss ${gpu.loss} on webgpu, ${js.loss} on js`);
    } finally {
      t.cleanup();
    }
  });
});
