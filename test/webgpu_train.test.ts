import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAttn, type CliResult } from './helpers.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * `attn train --backend webgpu` end to end, against the same run on js: a
 * tiny character GPT (dropout and clipping on) for 4 steps. The first run
 * loses its device after step 3 (the documented test hook
 * ATTN_TEST_LOSE_DEVICE_AFTER_STEP) and must stop with one line, leaving the
 * step-2 checkpoint; a second run resumes it on webgpu. Both checkpoints
 * load and sample on js, and the losses match js's.
 */

const skip = await webgpuSkip('webgpu training tests');

const SIZE = ['--builtin', '--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '8', '--batch-size', '2', '--dropout', '0.1',
  '--grad-clip', '0.05', '--warmup-iters', '1', '--eval-interval', '2', '--eval-iters', '1', '--seed', '7'];

/** The per-step losses a run printed (log lines "step k/n … loss x"). */
function stepLosses(r: CliResult): Map<number, number> {
  return new Map([...r.stderr.matchAll(/step (\d+)\/\d+ \S+ loss (\S+)/g)].map((m) => [Number(m[1]), Number(m[2])]));
}

function summary(r: CliResult): { step: number; train_loss: number; val_loss: number } {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { step: number; train_loss: number; val_loss: number };
}

/** Relative agreement of two losses: float32 sums in another order on the GPU. */
const near = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 1e-4 * Math.abs(want), `${what}: webgpu ${got}, js ${want}`);

describe('attn train --backend webgpu', { skip }, () => {
  it('matches js, stops with one line and an intact checkpoint when the device is lost, and resumes on the device', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-webgpu-train-'));
    // Log every 3 steps: step 1 is queued without a read (clipping on the device); 2, 3 and 4 are read (3 logs, 2 and 4 evaluate).
    const js = runAttn(['train', ...SIZE, '--max-iters', '4', '--log-interval', '3', '--backend', 'js', '--out', join(dir, 'js')], dir);
    const want = summary(js);

    const lost = runAttn(['train', ...SIZE, '--max-iters', '4', '--log-interval', '3', '--backend', 'webgpu', '--out', join(dir, 'gpu')], dir, { ATTN_TEST_LOSE_DEVICE_AFTER_STEP: '3' });
    assert.notEqual(lost.code, 0);
    const errors = lost.stderr.split('\n').filter((l) => l.startsWith('attn: error'));
    assert.equal(errors.length, 1, lost.stderr);
    assert.match(errors[0]!, /WebGPU device was lost/);
    assert.doesNotMatch(lost.stderr, /\n\s+at /, 'no stack trace');
    const kept = JSON.parse(readFileSync(join(dir, 'gpu', 'trainer.json'), 'utf8')) as { step: number; history: Array<{ train_loss: number; val_loss: number }> };
    assert.equal(kept.step, 2, 'the step-2 checkpoint is the last one');
    const jsState = JSON.parse(readFileSync(join(dir, 'js', 'trainer.json'), 'utf8')) as { history: Array<{ train_loss: number; val_loss: number }> };
    near(kept.history[0]!.val_loss, jsState.history[0]!.val_loss, 'val loss at step 2');
    const gotLosses = stepLosses(lost);
    const wantLosses = stepLosses(js);
    for (const step of [3]) near(gotLosses.get(step)!, wantLosses.get(step)!, `loss of step ${step}`);

    const resumed = runAttn(['train', '--resume', join(dir, 'gpu'), '--max-iters', '4', '--backend', 'webgpu'], dir);
    const got = summary(resumed);
    assert.equal(got.step, 4);
    near(got.train_loss, want.train_loss, 'train loss at step 4');
    near(got.val_loss, want.val_loss, 'val loss at step 4');

    const sample = runAttn(['sample', '--model', join(dir, 'gpu'), '--backend', 'js', '--prompt', 'The ', '--max-new-tokens', '8', '--seed', '1'], dir);
    assert.equal(sample.code, 0, sample.stderr);
    assert.ok(sample.stdout.length >= 4, sample.stdout);
  });

  it('trains a Llama (RMSNorm, RoPE, SwiGLU, grouped KV heads) as js does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-webgpu-llama-'));
    const args = ['train', '--arch', 'llama', '--n-kv-head', '1', ...SIZE, '--max-iters', '3', '--log-interval', '2'];
    const want = summary(runAttn([...args, '--backend', 'js', '--out', join(dir, 'js')], dir));
    const got = summary(runAttn([...args, '--backend', 'webgpu', '--out', join(dir, 'gpu')], dir));
    near(got.train_loss, want.train_loss, 'train loss');
    near(got.val_loss, want.val_loss, 'val loss');
  });
});
