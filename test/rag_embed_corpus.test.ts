import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runEmbedEval, runEmbedTrain } from '../src/cli/embed.js';
import { factCorpus } from '../src/data/fact_corpus.js';

describe('attn embed train --corpus (inverse cloze task)', () => {
  it('trains on the documents alone, records the corpus, and evaluates from the record', async () => {
    const work = mkdtempSync(join(tmpdir(), 'attn-ict-'));
    try {
      const corpus = join(work, 'docs');
      mkdirSync(corpus);
      for (const d of factCorpus({ towns: 40, questionsPerTown: 1, seed: 4 }).documents) writeFileSync(join(corpus, d.file), d.text);
      writeFileSync(join(corpus, 'blob.txt'), Buffer.from([1, 0, 2]));
      const out = join(work, 'emb');
      const logged: string[] = [];
      const { recall } = runEmbedTrain({ out, corpus: [corpus], pairs: 400, dataSeed: 1, passageWords: 40, windowWords: 24, steps: 4, dModel: 16, heads: 2, layers: 1, batchSize: 8, evalInterval: 4, evalPairs: 8, logInterval: 100 }, (s) => logged.push(s));
      assert.ok(recall.size > 0);
      const record = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8'));
      assert.deepEqual(record.pairs, { task: 'corpus', files: [corpus], pairs: 400, seed: 1, passageWords: 40 });
      assert.match(await runEmbedEval({ model: out }), /recall@1 \(\d+ held-out pairs/);
      assert.throws(() => runEmbedTrain({ out: join(work, 'x'), corpus: [corpus], task: 'templates', dataSeed: 1, passageWords: 40, windowWords: 24 }), /give one of --data FILE, --corpus FILES… or --task/);
      assert.throws(() => runEmbedTrain({ out: join(work, 'y'), corpus: [join(work, 'missing')], dataSeed: 1, passageWords: 40, windowWords: 24 }), /missing: no such file or directory/);
      // --key-by document: recorded, so the evaluation rebuilds the same (by-sentence) split.
      const byDoc = join(work, 'emb-doc');
      runEmbedTrain({ out: byDoc, corpus: [corpus], keyBy: 'document', multiFactRate: 0.5, keepRate: 0.75, multiKeepRate: 0.75, untitledRate: 0.5, titleRate: 0.1, samePassageRate: 0.75, spaceTokens: false, pairs: 400, dataSeed: 1, passageWords: 40, windowWords: 24, steps: 2, dModel: 16, heads: 2, layers: 1, batchSize: 8, evalInterval: 2, evalPairs: 8, logInterval: 100 }, () => {});
      assert.equal(JSON.parse(readFileSync(join(byDoc, 'training.json'), 'utf8')).pairs.keyBy, 'document');
      assert.equal(JSON.parse(readFileSync(join(byDoc, 'training.json'), 'utf8')).pairs.multiFactRate, 0.5, 'recorded, so the evaluation rebuilds the same pairs');
      const pairsRecord = JSON.parse(readFileSync(join(byDoc, 'training.json'), 'utf8')).pairs;
      assert.deepEqual([pairsRecord.keepRate, pairsRecord.multiKeepRate], [0.75, 0.75], '--keep-rate and --multi-keep-rate recorded');
      assert.deepEqual([pairsRecord.untitledRate, pairsRecord.titleRate, pairsRecord.samePassageRate], [0.5, 0.1, 0.75], '--untitled-rate, --title-rate and --same-passage-rate recorded');
      assert.match(await runEmbedEval({ model: byDoc }), /recall@1 \(\d+ held-out pairs/);
      assert.equal(JSON.parse(readFileSync(join(byDoc, 'training.json'), 'utf8')).options.spaceTokens, false, '--no-space-tokens');
      assert.equal(JSON.parse(readFileSync(join(byDoc, 'tokenizer.json'), 'utf8')).spaces, false);
      assert.throws(() => runEmbedTrain({ out: join(work, 'z'), task: 'templates', keyBy: 'document', dataSeed: 1, passageWords: 40, windowWords: 24 }), /--key-by applies to --corpus only/);
      assert.throws(() => runEmbedTrain({ out: join(work, 'w'), task: 'templates', multiFactRate: 0.5, dataSeed: 1, passageWords: 40, windowWords: 24 }), /--multi-fact-rate applies to --corpus only/);
      assert.throws(() => runEmbedTrain({ out: join(work, 'v'), corpus: [corpus], multiFactRate: 2, dataSeed: 1, passageWords: 40, windowWords: 24 }), /between 0 and 1/);
      assert.throws(() => runEmbedTrain({ out: join(work, 'u'), task: 'templates', keepRate: 0.5, dataSeed: 1, passageWords: 40, windowWords: 24 }), /--keep-rate applies to --corpus only/);
      assert.throws(() => runEmbedTrain({ out: join(work, 't'), corpus: [corpus], multiKeepRate: 1.5, dataSeed: 1, passageWords: 40, windowWords: 24 }), /--multi-keep-rate must be between 0 and 1, not 1.5/);
      assert.throws(() => runEmbedTrain({ out: join(work, 's'), task: 'templates', titleRate: 0.1, dataSeed: 1, passageWords: 40, windowWords: 24 }), /--title-rate applies to --corpus only/);
      assert.throws(() => runEmbedTrain({ out: join(work, 'r'), corpus: [corpus], untitledRate: -0.5, dataSeed: 1, passageWords: 40, windowWords: 24 }), /--untitled-rate must be between 0 and 1/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
