import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { natural, nonNeg, posInt, posNum, rate, seed } from '../src/cli/flags.js';
import { assertUserError, runAttn } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'attn-cli-flags-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('flags out of range are refused before any work, in one line', () => {
  it('the range parsers', () => {
    assert.equal(seed('4294967295'), 4294967295);
    assert.throws(() => seed('4294967296'), /a whole number from 0 to 4294967295/);
    assert.throws(() => seed('-1'), /a whole number from 0 to 4294967295/);
    assert.equal(posInt('3'), 3);
    assert.throws(() => posInt('0'), /must be ≥ 1/);
    assert.equal(natural('0'), 0);
    assert.throws(() => natural('-1'), /must be ≥ 0/);
    assert.throws(() => posNum('0'), /must be > 0/);
    assert.equal(nonNeg('0'), 0);
    assert.throws(() => nonNeg('-0.5'), /must be ≥ 0/);
    assert.equal(rate('1'), 1);
    assert.throws(() => rate('1.5'), /between 0 and 1/);
  });

  it('commands that crashed, hung or went on with a bad value', () => {
    const file = join(work, 'a-file');
    writeFileSync(file, 'x');
    const cases: [string[], RegExp][] = [
      [['rag', 'demo', '--out', join(work, 'rd'), '--towns', '1'], /at least 2 towns/],
      [['rag', 'demo', '--out', join(work, 'rd'), '--questions-per-town', '-1'], /must be ≥ 1/],
      [['rag', 'demo', '--out', join(work, 'rd'), '--steps', '-1'], /must be ≥ 0/],
      [['rag', 'demo', '--out', file], /is a file, not a directory/],
      [['rag', 'bench', '--embedder', join(work, 'none'), '--queries', '0'], /must be ≥ 1/],
      [['rag', 'query', '--store', join(work, 'none'), '--rrf-k', '-1', 'q'], /must be ≥ 0/],
      [['rag', 'index', '--store', join(work, 'none'), '--batch', '0', file], /must be ≥ 1/],
      [['embed', 'train', '--out', join(work, 'e'), '--pairs', '-1'], /must be ≥ 1/],
      [['embed', 'train', '--out', join(work, 'e'), '--keep-rate', '-1'], /between 0 and 1/],
      [['translate', '--model', join(work, 'none'), '--max-length', '0', 'a'], /must be ≥ 1/],
      [['translate', '--model', join(work, 'none'), '--length-penalty', '-1', 'a'], /must be ≥ 0/],
      [['serve', '--model', join(work, 'none'), '--shutdown-timeout', '-1'], /must be ≥ 0/],
      [['serve', '--model', join(work, 'none'), '--vector-store-root', file], /--vector-store-root .* is a file/],
      [['bench', '--steps', '0'], /must be ≥ 1/],
      [['bench', '--config', 'S', '--text', join(work, 'missing.txt')], /--text .*: no such file/],
      [['reference', join(work, 'none'), '--lora', file], /--lora .*: is not a directory/],
      [['align', 'demo', '--quick', '--out', file], /is a file, not a directory/],
      [['align', 'demo', '--quick', '--out', join(work, 'rd'), '--seed', '-1'], /must be a whole number from 0 to 4294967295/],
      [['align', 'demo', '--quick', '--out', join(work, 'rd'), '--base', join(work, 'none')], /model directory .* does not exist/],
      [['bench', 'serve', '--max-tokens', '0'], /must be ≥ 1/],
      [['bench', 'fleet', '--kill-at', '-1'], /--kill-at must be inside the fleet run/],
      [['bench', 'serve', '--rss-every', '0'], /must be ≥ 1/],
      [['bench', '--config', 'S', 'serve', '--duration', '1', '--warmup', '0', '--streams', '1', '--model', join(work, 'none')], /exited with code 1 before listening/],
    ];
    for (const [args, pattern] of cases) assertUserError(runAttn(args, work), pattern);
    assert.equal(existsSync(join(work, 'rd')), false, 'rag demo and align demo wrote nothing');
  });

  it('attn train: sizes the machine cannot hold are one line before any weight is allocated (was a RangeError stack)', () => {
    const text = join(work, 'text.txt');
    writeFileSync(text, 'hello world, this is some text.\n'.repeat(60));
    assertUserError(runAttn(['train', '--data', text, '--out', join(work, 'big1'), '--n-embd', '1000000000', '--n-head', '1'], work), /one weight matrix would hold 4\.00e\+18 numbers, more than an array can/);
    assertUserError(runAttn(['train', '--data', text, '--out', join(work, 'big2'), '--n-embd', '8192', '--n-layer', '64', '--n-head', '8'], work), /--n-embd 8192, --n-layer 64 .*needs about [\d.]+ GiB of memory, more than this machine's/);
    // Sizes that pass the checks but not the allocator (a batch of 10⁸ windows): one line too.
    const r = runAttn(['train', '--data', text, '--out', join(work, 'big3'), '--n-embd', '64', '--n-head', '2', '--n-layer', '1', '--batch-size', '100000000', '--max-iters', '1'], work);
    assertUserError(r, /^attn: error: out of memory: .*; choose a smaller batch, context or model$/m);
    assert.equal(existsSync(join(work, 'big1')) || existsSync(join(work, 'big2')) || existsSync(join(work, 'big3')), false);
  });

  it('a parse error of any command, subcommands included, is one line naming the command to ask for help', () => {
    const cases: [string[], string][] = [
      [['train', '--n-layer', 'abc'], 'attn train'],
      [['rag', 'index', '--batch', '2'], 'attn rag index'],
      [['bench', 'fleet', '--bogus'], 'attn bench fleet'],
      [['nonsense'], 'attn'],
    ];
    for (const [args, command] of cases) {
      const r = runAttn(args, work);
      assert.equal(r.code, 1, args.join(' '));
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line: ${JSON.stringify(r.stderr)}`);
      assert.match(lines[0]!, new RegExp(`^error: .* \\(run \`${command} --help\` for usage\\)$`));
    }
  });
});
