import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fablesCorpus } from '../src/data/fables.js';
import { unescapeStop } from '../src/cli/sample.js';
import { assertUserError, runAttn } from './helpers.js';

// Paths, flags and prompts that are wrong get one `attn: error:` line, a non-zero exit, and leave nothing behind.
const work = mkdtempSync(join(tmpdir(), 'attn-cli-paths-'));
after(() => rmSync(work, { recursive: true, force: true }));
const attn = (args: string[]) => runAttn(args, work);

const text = join(work, 'text.txt');
const file = join(work, 'afile');
const model = join(work, 'm');
const TINY = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '4', '--eval-iters', '2', '--warmup-iters', '5'];

before(() => {
  writeFileSync(text, fablesCorpus(20_000));
  writeFileSync(file, 'not a directory');
  const r = attn(['train', '--data', text, '--out', model, ...TINY, '--max-iters', '20', '--eval-interval', '20']);
  assert.equal(r.code, 0, r.stderr);
});

/** A user error that wrote nothing to stdout. */
function refused(args: string[], pattern: RegExp): void {
  const r = attn(args);
  assertUserError(r, pattern);
  assert.equal(r.stdout, '', 'nothing on stdout');
}

describe('--out directories', () => {
  it('an --out that is a file, or lies under one, is refused before any work', () => {
    refused(['train', '--data', text, '--out', file, ...TINY, '--max-iters', '1'], /--out .*afile is a file, not a directory/);
    refused(['train', '--data', text, '--out', join(file, 'sub'), ...TINY, '--max-iters', '1'], /afile is a file, not a directory/);
    refused(['quantize', '--model', model, '--out', file], /is a file, not a directory/);
    refused(['export', '--model', model, '--to', 'hf', '--out', join(file, 'sub')], /afile is a file, not a directory/);
    refused(['pointcloud', 'train', '--task', 'shapes', '--out', join(file, 'sub', 'deeper')], /afile is a file, not a directory/);
    assert.equal(readFileSync(file, 'utf8'), 'not a directory');
  });

  it('merge, quantize and export --to hf refuse to write over their source model', () => {
    const before = readdirSync(model).sort();
    refused(['quantize', '--model', model, '--out', model], /--out .* is the source model's directory: write to another one/);
    refused(['export', '--model', model, '--to', 'hf', '--out', `${model}/`], /is the source model's directory/);
    refused(['merge', '--model', model, '--adapter', join(work, 'no-adapter'), '--out', model], /is the source model's directory/);
    assert.deepEqual(readdirSync(model).sort(), before);
    assert.ok(existsSync(join(model, 'optimizer.safetensors')) && existsSync(join(model, 'trainer.json')));
  });
});

describe('output files', () => {
  it('a directory, or a file in a missing directory, is one line naming the path', () => {
    mkdirSync(join(work, 'adir'), { recursive: true });
    refused(['tokenizer', 'train', '--data', text, '--vocab-size', '300', '--out', join(work, 'adir')], /--out .*adir is a directory; give a file name/);
    refused(['tokenizer', 'train', '--data', text, '--vocab-size', '300', '--out', join(work, 'nodir', 'sub', 't.json')], /--out .*t\.json: directory .*nodir[/\\]sub does not exist/);
    refused(['export', '--model', model, '--to', 'gguf', '--out', join(work, 'nodir5', 'x.gguf')], /directory .*nodir5 does not exist/);
    refused(['caption', '--model', model, '--heatmap', join(work, 'nodir6', 'x.png'), 'img.png'], /--heatmap .*x\.png: directory .*nodir6 does not exist/);
    assert.ok(!existsSync(join(work, 'nodir')) && !existsSync(join(work, 'nodir5')) && !existsSync(join(work, 'nodir6')));
    assert.deepEqual(readdirSync(join(work, 'adir')), [], 'no temp file left');
  });

  it('translate --attention-html into a missing directory (the writers check the path themselves)', () => {
    const s2s = join(work, 's2s');
    const t = attn(['seq2seq', 'train', '--task', 'numbers-de', '--steps', '2', '--layers', '1', '--d-model', '16', '--heads', '2', '--d-ff', '32', '--eval-size', '2', '--out', s2s]);
    assert.equal(t.code, 0, t.stderr);
    assertUserError(attn(['translate', '--model', s2s, '--attention-html', join(work, 'nodir7', 'x.html'), 'one']), /x\.html: directory .*nodir7 does not exist/);
  });
});

describe('flags and model paths', () => {
  it('--threads below 1 and eval --batch-size below 1 are user errors', () => {
    refused(['sample', '--model', model, '--threads', '0'], /--threads must be ≥ 1/);
    refused(['train', '--data', text, '--out', join(work, 'x'), '--threads', '-3'], /--threads must be ≥ 1/);
    refused(['eval', '--model', model, '--data', text, '--batch-size', '0'], /--batch-size must be ≥ 1/);
    refused(['eval', '--model', model, '--data', text, '--batch-size', '-1'], /--batch-size must be ≥ 1/);
  });

  it('a file given as a model or data directory says it is a file', () => {
    refused(['sample', '--model', text], /text\.txt is a file, not a model directory/);
    refused(['translate', '--model', text, 'one'], /text\.txt is a file, not a model directory/);
    refused(['vit', 'train', '--data', text, '--out', join(work, 'v')], /--data .*text\.txt is a file, not a directory/);
    refused(['pointcloud', 'train', '--data', text, '--out', join(work, 'p')], /--data .*text\.txt is a file, not a directory/);
  });

  it('a GGUF without a tokenizer says so, and how to get one', () => {
    const gguf = join(work, 'char.gguf');
    assert.equal(attn(['export', '--model', model, '--to', 'gguf', '--out', gguf]).code, 0);
    refused(['sample', '--model', gguf], /the GGUF file has no tokenizer in its metadata.*sub-word tokenizer/);
  });
});

describe('train notes', () => {
  it('--resume and --init name the ignored flags; a checkpoint already past --max-iters says so', () => {
    const r = attn(['train', '--resume', model, '--out', join(work, 'r'), '--max-iters', '22', '--n-layer', '6', '--lr', '5e-3', '--batch-size', '8']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ignoring --n-layer, --batch-size, --lr\)/);
    const i = attn(['train', '--init', model, '--data', text, '--out', join(work, 'i'), '--n-layer', '2', '--n-head', '2', '--n-embd', '8', '--max-iters', '1']);
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stderr, /ignoring --n-layer, --n-head, --n-embd\n/);
    const past = attn(['train', '--resume', model, '--out', join(work, 'past'), '--max-iters', '10']);
    assert.equal(past.code, 0, past.stderr);
    assert.match(past.stderr, /note: the checkpoint is already at step 20 ≥ --max-iters 10/);
  });
});

describe('HF export', () => {
  it('tokenizer_config.json gives the model\'s context as model_max_length', () => {
    const bpe = join(work, 'bpe');
    const t = attn(['train', '--data', text, '--out', bpe, ...TINY, '--max-iters', '2', '--tokenizer', 'bpe', '--vocab-size', '300']);
    assert.equal(t.code, 0, t.stderr);
    const hf = join(work, 'bpe-hf');
    assert.equal(attn(['export', '--model', bpe, '--to', 'hf', '--out', hf]).code, 0);
    assert.equal(JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8')).model_max_length, 16);
  });
});

describe('attn sample', () => {
  it('--stop understands \\n, \\t and \\\\ as typed in a shell', () => {
    assert.equal(unescapeStop('\\n\\n'), '\n\n');
    assert.equal(unescapeStop('a\\tb'), 'a\tb');
    assert.equal(unescapeStop('\\\\n'), '\\n');
    assert.equal(unescapeStop('\\x'), '\\x');
    const args = ['sample', '--model', model, '--prompt', 'The ', '--max-new-tokens', '200', '--temperature', '1', '--seed', '3'];
    const free = attn(args);
    assert.equal(free.code, 0, free.stderr);
    assert.ok(free.stdout.slice(0, -1).includes('\n'), 'the model writes newlines when not stopped');
    const stopped = attn([...args, '--stop', '\\n']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(!stopped.stdout.slice(0, -1).includes('\n'), `stopped at the first newline: ${JSON.stringify(stopped.stdout)}`);
    assert.ok(free.stdout.startsWith(stopped.stdout.slice(0, -1)));
  });

  it('--strict-context refuses a long prompt before writing it', () => {
    refused(['sample', '--model', model, '--prompt', 'a'.repeat(40), '--strict-context'], /--prompt has 40 tokens but the model's context is 16/);
  });
});
