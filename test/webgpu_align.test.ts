import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { alignDemo } from '../src/cli/align.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * `attn align demo --quick --backend webgpu`: the alignment path — SFT,
 * preference pairs from the SFT model's own replies, the reward model, DPO,
 * and the evaluations that generate — on the device, against the same run
 * on js: the same result (every reply the evaluations generated included)
 * and each stage's held-out numbers within rtol 1e-3. Both start from the
 * base model the js run pretrained (--base): pretraining on the device is
 * test/webgpu_train.test.ts's, and on SwiftShader it took 65 of this test's
 * 190 s. SwiftShader without a GPU (about a minute and a half); skips as
 * webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('WebGPU align demo test');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-align-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

describe('attn align demo on webgpu', { skip }, () => {
  it('--quick: the same result and held-out numbers as js, stage by stage', async () => {
    const run = async (backend: string, base?: string) => {
      const log: string[] = [];
      try {
        const { seconds: _s, ...result } = await alignDemo({ out: join(work, backend), quick: true, backend, ...(base ? { base } : {}) }, (s) => log.push(s));
        return { result, log: log.join('\n') };
      } finally {
        setBackend('js');
      }
    };
    const js = await run('js');
    const gpu = await run('webgpu', join(work, 'js', 'base'));
    assert.match(gpu.log, /backend webgpu/);
    assert.match(gpu.log, /reusing the base model/);
    assert.deepEqual(gpu.result, js.result);
    const history = (backend: string, stage: string, file: string) => (JSON.parse(readFileSync(join(work, backend, stage, file), 'utf8')) as { history: Array<Record<string, number>> }).history;
    for (const [stage, file] of [['sft', 'sft.json'], ['reward', 'reward.json'], ['dpo', 'dpo.json']] as const) {
      const [want, got] = [history('js', stage, file), history('webgpu', stage, file)];
      assert.equal(got.length, want.length, stage);
      got.forEach((row, i) => {
        for (const [k, v] of Object.entries(want[i]!)) assert.ok(Math.abs(row[k]! - v) <= 1e-3 * Math.abs(v) + 1e-6, `${stage} ${k} at step ${row.step}: ${row[k]} on webgpu, ${v} on js`);
      });
    }
  });
});
