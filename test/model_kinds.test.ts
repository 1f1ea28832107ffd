import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { UserError } from '../src/util/errors.js';
import { loadModel } from '../src/io/model_dir.js';

describe('loadModel names attn architectures that are not GPTs', () => {
  for (const [type, word] of [['vit', 'ViT'], ['transformer-seq2seq', 'seq2seq'], ['embedder', 'embedder']] as const) {
    it(`model_type "${type}"`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'attn-kind-'));
      try {
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: type }));
        assert.throws(() => loadModel(dir), (e: unknown) => e instanceof UserError && e.message.includes(word) && e.message.includes('not a GPT'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
