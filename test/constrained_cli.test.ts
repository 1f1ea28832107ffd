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

  it('prints the prompt, then one document valid under the schema', () => {
    const validate = new Ajv({ strict: false }).compile(SCHEMA);
    for (const seed of ['1', '2', '3']) {
      const r = runAttn(['sample', '--model', dir, '--prompt', 'P:', '--json-schema', schemaFile, '--max-new-tokens', '60', '--temperature', '1.3', '--seed', seed, '--backend', 'js'], work);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.startsWith('P:'));
      const doc = JSON.parse(r.stdout.slice(2).trim());
      assert.ok(validate(doc), r.stdout);
    }
    const obj = runAttn(['sample', '--model', dir, '--prompt', 'P:', '--json-object', '--max-new-tokens', '30', '--backend', 'js'], work);
    assert.equal(obj.code, 0, obj.stderr);
    const v = JSON.parse(obj.stdout.slice(2).trim());
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
});
