import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fablesCorpus } from '../src/data/fables.js';
import { loadModel } from '../src/io/model_dir.js';
import { Llama } from '../src/models/llama.js';
import { parseTrainOptions } from '../src/train/options.js';
import { train } from '../src/train/trainer.js';
import { UserError } from '../src/util/errors.js';

describe('attn train --arch llama', () => {
  const text = fablesCorpus(20_000);
  const options = (maxIters: number) => parseTrainOptions({ arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, nEmbd: 32, blockSize: 16, batchSize: 4, maxIters, evalInterval: 5, evalIters: 2, warmupIters: 2, lrDecayIters: 10 });

  it('trains a grouped-query Llama from scratch, saves it as attn-llama, and it loads back as a Llama', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'attn-llama-')), 'm');
    const s = train({ text, dataPath: 'fables', options: options(10), out });
    assert.ok(Number.isFinite(s.val_loss) && s.val_loss < Math.log(60), `val loss ${s.val_loss}`);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.model_type, 'attn-llama');
    assert.equal(config.n_kv_head, 2);
    const loaded = loadModel(out);
    assert.ok(loaded.model instanceof Llama);
  });

  it('resuming reproduces the uninterrupted run exactly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-llama-resume-'));
    const full = train({ text, dataPath: 'fables', options: options(10), out: join(dir, 'full') });
    train({ text, dataPath: 'fables', options: options(5), out: join(dir, 'half') });
    const resumed = train({ text, dataPath: 'fables', options: options(10), out: join(dir, 'half'), resume: join(dir, 'half') });
    assert.equal(resumed.train_loss, full.train_loss);
    assert.equal(resumed.val_loss, full.val_loss);
  });

  it('refuses a key/value head count that does not divide the heads', () => {
    assert.throws(() => parseTrainOptions({ arch: 'llama', nHead: 4, nKvHead: 3 }), (e: unknown) => e instanceof UserError && /n_kv_head/.test(e.message));
  });
});
