import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { runSample } from '../src/cli/sample.js';
import { startServer } from '../src/serve/server.js';
import { silentLogger, tinyModelDir } from './serve_fixture.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * `attn sample --backend webgpu` and `attn serve` on webgpu against js: the
 * same text from the same model directory and seed. Without a GPU, run on
 * SwiftShader (VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json);
 * with no adapter the tests skip, unless ATTN_REQUIRE_WEBGPU=1 (CI).
 */

const skip = await webgpuSkip('WebGPU sample/serve tests');
let model: ReturnType<typeof tinyModelDir>;
before(() => (model = tinyModelDir('tiny', 5)));
after(() => {
  setBackend('js');
  model?.cleanup();
});

async function sample(backend: string, flags: { greedy?: boolean; temperature: number; topK?: number }): Promise<string> {
  let out = '';
  await runSample({ model: model.dir, prompt: 'The cat', maxNewTokens: 10, seed: 3, backend, ...flags }, (s) => (out += s));
  setBackend('js');
  return out;
}

/** One streamed chat completion from a server on `backend`: the concatenated deltas and the finish reason. */
async function streamedChat(backend: 'js' | 'webgpu'): Promise<{ text: string; finish: string | null }> {
  if (backend === 'webgpu') await selectBackendAsync('webgpu');
  else setBackend('js');
  const server = await startServer({ models: [model.dir], port: 0, logger: silentLogger() });
  try {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 8, temperature: 0, stream: true }),
    });
    assert.equal(res.status, 200);
    let text = '';
    let finish: string | null = null;
    for (const line of (await res.text()).split('\n')) {
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const chunk = JSON.parse(line.slice(6)) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }> };
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    return { text, finish };
  } finally {
    await server.close(1000);
    setBackend('js');
  }
}

describe('sample and serve on webgpu', { skip }, () => {
  it('attn sample --backend webgpu: greedy and seeded sampling give the text js gives', async () => {
    for (const flags of [{ greedy: true, temperature: 0 }, { temperature: 0.9, topK: 20 }]) {
      const js = await sample('js', flags);
      assert.equal(await sample('webgpu', flags), js, JSON.stringify(flags));
      assert.ok(js.length > 'The cat'.length);
    }
  });

  it('attn serve on webgpu: one streamed chat completion, the same text as on js', async () => {
    const js = await streamedChat('js');
    const gpu = await streamedChat('webgpu');
    assert.ok(js.text.length > 0);
    assert.deepEqual(gpu, js);
  });
});
