import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fablesCorpus } from '../src/data/fables.js';
import { parseEmbedderOptions } from '../src/train/embedder_options.js';
import { parseTrainOptions } from '../src/train/options.js';
import { TRAIN_PRESETS } from '../src/train/presets.js';
import { UserError } from '../src/util/errors.js';
import { runAttn } from './helpers.js';

const workRoot = mkdtempSync(join(tmpdir(), 'attn-train-options-'));
const work = join(workRoot, 'cwd');
mkdirSync(work);
after(() => rmSync(workRoot, { recursive: true, force: true }));

describe('train options: the end of the cosine decay follows --lr', () => {
  it('min_lr defaults to lr / 10 (1e-4 at the default lr 1e-3); a given min_lr and the presets\' are kept', () => {
    const defaults = parseTrainOptions({});
    assert.equal(defaults.lr, 1e-3);
    assert.equal(defaults.minLr, 1e-4);
    assert.equal(parseTrainOptions({ lr: 1e-5 }).minLr, 1e-5 / 10);
    assert.equal(parseTrainOptions({ lr: 1e-2, minLr: 0 }).minLr, 0);
    assert.equal(parseTrainOptions({ lr: 1e-5, minLr: 1e-5 }).minLr, 1e-5);
    for (const [name, preset] of Object.entries(TRAIN_PRESETS)) {
      if (preset.options.minLr !== undefined) assert.equal(parseTrainOptions(preset.options).minLr, preset.options.minLr, name);
    }
    assert.throws(() => parseTrainOptions({ lr: 1e-5, minLr: 1e-4 }), (e: unknown) => e instanceof UserError && e.message === '--min-lr: min_lr must not exceed lr');
  });

  it('the embedder\'s min_lr follows its lr the same way', () => {
    assert.equal(parseEmbedderOptions({}).minLr, 1e-4);
    assert.equal(parseEmbedderOptions({ lr: 1e-5 }).minLr, 1e-5 / 10);
    assert.equal(parseEmbedderOptions({ lr: 1e-2, minLr: 0 }).minLr, 0);
    assert.throws(() => parseEmbedderOptions({ lr: 1e-5, minLr: 1e-4 }), (e: unknown) => e instanceof UserError && /min_lr must not exceed lr/.test(e.message));
  });

  it('attn train --init MODEL --lr 1e-5 without --min-lr fine-tunes (decaying to 1e-6), and --resume keeps the checkpoint\'s schedule', () => {
    const corpus = join(work, 'notes.txt');
    writeFileSync(corpus, fablesCorpus(20_000));
    const tiny = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '4', '--eval-iters', '1', '--warmup-iters', '1', '--log-interval', '1', '--eval-interval', '2'];
    const base = runAttn(['train', '--data', corpus, '--out', join(work, 'base'), ...tiny, '--max-iters', '2'], work);
    assert.equal(base.code, 0, base.stderr);
    const tuned = join(work, 'tuned');
    const r = runAttn(['train', '--init', join(work, 'base'), '--data', corpus, '--out', tuned, '--max-iters', '2', '--lr', '1e-5', '--block-size', '16', '--batch-size', '4', '--eval-iters', '1', '--eval-interval', '2'], work);
    assert.equal(r.code, 0, r.stderr);
    const options = () => (JSON.parse(readFileSync(join(tuned, 'trainer.json'), 'utf8')) as { options: { lr: number; minLr: number } }).options;
    assert.deepEqual([options().lr, options().minLr], [1e-5, 1e-5 / 10]);
    const resumed = runAttn(['train', '--resume', tuned, '--max-iters', '3'], work);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual([options().lr, options().minLr], [1e-5, 1e-5 / 10]);
  });
});
