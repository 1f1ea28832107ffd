import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { assertUserError, runAttn } from './helpers.js';
import { tinyModelDir } from './serve_fixture.js';

const SCHEMA = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, n: { type: 'integer' }, ok: { type: 'boolean' } }, required: ['name', 'n', 'ok'], additionalProperties: false };

describe('attn sample --json-schema / --json-object', () => {
  const { dir, cleanup } = tinyModelDir('tiny', 5);
  after(cleanup);
  const work = join(dir, '..');
  const schemaFile = join(work, 'schema.json');
  writeFileSync(schemaFile, JSON.stringify(SCHEMA));

  it('prints one document valid under the schema and nothing else (not the prompt)', () => {
    const validate = new Ajv({ strict: false }).compile(SCHEMA);
    for (const seed of ['1', '2', '3']) {
      const r = runAttn(['sample', '--model', dir, '--prompt', 'P:', '--json-schema', schemaFile, '--max-new-tokens', '60', '--temperature', '1.3', '--seed', seed, '--backend', 'js'], work);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(r.stdout);
      assert.ok(validate(doc), r.stdout);
    }
    const obj = runAttn(['sample', '--model', dir, '--prompt', 'P:', '--json-object', '--max-new-tokens', '30', '--backend', 'js'], work);
    assert.equal(obj.code, 0, obj.stderr);
    const v = JSON.parse(obj.stdout);
    assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
  });

  it('a schema it cannot follow, or cannot read, is one clear line', () => {
    const bad = join(work, 'bad.json');
    writeFileSync(bad, JSON.stringify({ type: 'object', properties: { a: { type: 'string', format: 'date' } } }));
    assertUserError(runAttn(['sample', '--model', dir, '--json-schema', bad], work), /--json-schema .*bad\.json: JSON schema at #\/properties\/a: keyword "format" is not supported/);
    assertUserError(runAttn(['sample', '--model', dir, '--json-schema', join(work, 'absent.json')], work), /cannot read it \(ENOENT\)/);
    writeFileSync(bad, '{nope');
    assertUserError(runAttn(['sample', '--model', dir, '--json-schema', bad], work), /invalid JSON/);
    assertUserError(runAttn(['sample', '--model', dir, '--json-schema', schemaFile, '--json-object'], work), /give one of them/);
    assertUserError(runAttn(['sample', '--model', dir, '--json-schema', schemaFile, '--max-new-tokens', '5'], work), /too few for the shortest document/);
  });

  it('a model whose vocabulary cannot write the document (a character model without "{") is one clear line', () => {
    const text = join(work, 'plain.txt');
    writeFileSync(text, 'the quick brown fox jumps over the lazy dog\n'.repeat(40));
    const charModel = join(work, 'plain');
    const t = runAttn(['train', '--data', text, '--out', charModel, '--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '2', '--max-iters', '1', '--eval-iters', '1', '--backend', 'js'], work);
    assert.equal(t.code, 0, t.stderr);
    assertUserError(runAttn(['sample', '--model', charModel, '--json-object', '--max-new-tokens', '20', '--backend', 'js'], work), /no token of the model's vocabulary can continue the document/);
  });
});
