import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fablesCorpus } from '../src/data/fables.js';
import { loadTokenizerFile } from '../src/tokenizers/index.js';
import { runAttn, assertUserError } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'attn-tok-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));
const corpus = join(work, 'fables.txt');
writeFileSync(corpus, fablesCorpus(20_000));
const TINY = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '4', '--eval-iters', '1', '--warmup-iters', '1', '--max-iters', '4'];

const attn = (args: string[]) => runAttn(args, work);

/** Exit code 1 and the CLI's own "attn: error:" line, on top of the shared check. */
function assertCliError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assertUserError(r, pattern);
  assert.equal(r.code, 1, 'exit code');
  assert.match(r.stderr, /^attn: error: /m);
}

describe('attn tokenizer train / attn tokenize', () => {
  const tokFile = join(work, 'tok.json');

  it('trains a BPE file, then encodes, shows boundaries and decodes with it', () => {
    const r = attn(['tokenizer', 'train', '--data', corpus, '--vocab-size', '300', '--out', tokFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).vocab_size, 300);
    assert.match(r.stderr, /300|merges/);
    const tok = loadTokenizerFile(tokFile);
    const text = 'The fox said: 日本 🙂';
    const json = attn(['tokenize', '--tokenizer', tokFile, '--json', text]);
    assert.equal(json.code, 0, json.stderr);
    const ids = JSON.parse(json.stdout) as number[];
    assert.deepEqual(ids, Array.from(tok.encode(text)));
    const human = attn(['tokenize', '--tokenizer', tokFile, text]).stdout.split('\n');
    assert.match(human[0]!, new RegExp(`^${ids.length} tokens \\(bpe, vocabulary 300\\)`));
    assert.equal(human[1], ids.join(' '));
    assert.ok(human[2]!.includes('|'), 'token boundaries');
    const back = attn(['tokenize', '--tokenizer', tokFile, '--decode', JSON.stringify(ids)]);
    assert.equal(back.stdout, text + '\n');
    const file = join(work, 'in.txt');
    writeFileSync(file, text);
    assert.deepEqual(JSON.parse(attn(['tokenize', '--tokenizer', tokFile, '--json', '--file', file]).stdout), ids);
  });

  it('ends quietly when the reader closes stdout early (| head): no EPIPE stack trace, exit 0', async () => {
    const cli = resolve(process.cwd(), 'dist/src/cli/main.js');
    for (const extra of [[], ['--json']]) {
      const child = spawn(process.execPath, [cli, 'tokenize', '--tokenizer', tokFile, '--file', corpus, ...extra], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy(); // the reader is gone before the first write
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((done) => child.on('close', done));
      assert.equal(stderr, '', extra.join(' '));
      assert.equal(code, 0, extra.join(' '));
    }
  });

  it('fails clearly on bad input', () => {
    assertCliError(attn(['tokenizer', 'train', '--data', corpus, '--vocab-size', '200', '--out', join(work, 'x.json')]), /vocab size 200 is smaller than the base alphabet/);
    assertCliError(attn(['tokenize', '--tokenizer', tokFile, '--decode', '1 2 300']), /token id 300 is outside the vocabulary of 300/);
    assertCliError(attn(['tokenize', '--tokenizer', tokFile, '--decode', '1 x']), /"x" is not a token id/);
    const corrupt = join(work, 'corrupt.json');
    writeFileSync(corrupt, readFileSync(tokFile, 'utf8').slice(0, 100));
    assertCliError(attn(['tokenize', '--tokenizer', corrupt, 'hi']), /corrupt.json: invalid JSON/);
    writeFileSync(corrupt, JSON.stringify({ ...JSON.parse(readFileSync(tokFile, 'utf8')), merges: [[5, 600, 256]] }));
    assertCliError(attn(['tokenize', '--tokenizer', corrupt, 'hi']), /uses a token that no earlier byte or merge defines/);
    assertCliError(attn(['tokenize', '--tokenizer', join(work, 'none.json'), 'hi']), /no such file/);
    assertCliError(attn(['tokenize', 'hi']), /needs --model DIR or --tokenizer FILE/);
    assertCliError(attn(['tokenize', '--tokenizer', tokFile]), /give the text to tokenize/);
  });
});

describe('attn train --tokenizer', () => {
  for (const [kind, size] of [['bpe', 320], ['word', 100]] as const) {
    it(`trains on ${kind} tokens, saves the tokenizer, and samples with it`, () => {
      const out = join(work, `m-${kind}`);
      const r = attn(['train', '--data', corpus, '--out', out, '--tokenizer', kind, '--vocab-size', String(size), ...TINY]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).vocab_size, size);
      const tok = loadTokenizerFile(join(out, 'tokenizer.json'));
      assert.equal(tok.type, kind);
      assert.equal(tok.vocabSize, size);
      const s = attn(['sample', '--model', out, '--prompt', 'The fox', '--max-new-tokens', '20', '--seed', '3']);
      assert.equal(s.code, 0, s.stderr);
      assert.ok(s.stdout.startsWith('The fox'), s.stdout);
      const t = attn(['tokenize', '--model', out, '--json', 'The fox']);
      assert.deepEqual(JSON.parse(t.stdout), Array.from(tok.encode('The fox')));
    });
  }

  it('refuses --vocab-size with character tokens', () => {
    assertCliError(attn(['train', '--data', corpus, '--out', join(work, 'm-c'), '--vocab-size', '100', ...TINY]), /--vocab-size: applies to --tokenizer word and bpe only/);
  });
});
