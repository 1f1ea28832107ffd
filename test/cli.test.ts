import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fablesCorpus } from '../src/data/fables.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { runAttn, assertUserError } from './helpers.js';

const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');
// The commands run one folder down, so that their ../shared (the default data path) never exists,
// wherever the system's temp folder is.
const workRoot = mkdtempSync(join(tmpdir(), 'attn-cli-'));
const work = join(workRoot, 'cwd');
mkdirSync(work);
after(() => rmSync(workRoot, { recursive: true, force: true }));

const corpus = join(work, 'fables.txt');
writeFileSync(corpus, fablesCorpus(30_000));

/** A model small enough that a CLI run takes about a second. */
const TINY = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '4', '--eval-iters', '2', '--warmup-iters', '5', '--log-interval', '5'];

const attn = (args: string[]) => runAttn(args, work);

describe('the attn command', () => {
  it('is executable, so `npx attn` works in a fresh clone (npm run build sets the mode)', () => {
    assert.ok(statSync(resolve('dist/src/cli/main.js')).mode & 0o100, 'dist/src/cli/main.js is not executable');
    assert.match(readFileSync(resolve('dist/src/cli/main.js'), 'utf8'), /^#!\/usr\/bin\/env node/);
  });
});

describe('attn train and sample, end to end', () => {
  it('trains, checkpoints, prints a JSON summary, and samples', () => {
    const out = join(work, 'm1');
    const r = attn(['train', '--data', corpus, '--out', out, ...TINY, '--max-iters', '30', '--eval-interval', '15', '--lr', '1e-2']);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    assert.equal(summary.step, 30);
    for (const k of ['train_loss', 'val_loss', 'tokens_per_s', 'seconds']) assert.equal(typeof summary[k], 'number');
    const vocab = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).vocab_size;
    assert.ok(summary.val_loss < Math.log(vocab) - 0.5, `val loss ${summary.val_loss} should beat chance, ln(${vocab})`);
    assert.match(r.stderr, /val step 15: train loss [\d.]+ \(ppl [\d.]+\), val loss/);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'optimizer.safetensors', 'trainer.json']) {
      assert.ok(existsSync(join(out, f)), f);
    }
    const s = attn(['sample', '--model', out, '--prompt', 'The ', '--max-new-tokens', '40', '--seed', '3']);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.stdout.startsWith('The '));
    assert.equal(Array.from(s.stdout).length, 4 + 40 + 1);
    const again = attn(['sample', '--model', out, '--prompt', 'The ', '--max-new-tokens', '40', '--seed', '3']);
    assert.equal(again.stdout, s.stdout, 'seeded sampling is reproducible');
    const greedy = attn(['sample', '--model', out, '--greedy', '--max-new-tokens', '10']);
    assert.equal(greedy.code, 0, greedy.stderr);
  });

  it('resumes after SIGKILL and reproduces the uninterrupted run exactly', async () => {
    const args = ['--data', corpus, ...TINY, '--max-iters', '60', '--eval-interval', '10', '--dropout', '0.1'];
    const full = attn(['train', ...args, '--out', join(work, 'full')]);
    assert.equal(full.code, 0, full.stderr);

    const killedDir = join(work, 'killed');
    const child = spawn(process.execPath, [CLI, 'train', ...args, '--out', killedDir], { cwd: work });
    await new Promise<void>((done) => {
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/saved checkpoint at step 20/.test(err)) child.kill('SIGKILL');
      });
      child.on('exit', () => done());
    });
    const state = JSON.parse(readFileSync(join(killedDir, 'trainer.json'), 'utf8'));
    assert.ok(state.step >= 20 && state.step < 60, `killed mid-run (checkpoint at ${state.step})`);

    const resumed = attn(['train', '--resume', killedDir, '--max-iters', '60']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming from step/);
    assert.equal(resumed.stdout.trim().split('\n').at(-1)!.replace(/"(tokens_per_s|seconds)":[\d.e+-]+/g, ''), full.stdout.trim().split('\n').at(-1)!.replace(/"(tokens_per_s|seconds)":[\d.e+-]+/g, ''));
    const fullState = JSON.parse(readFileSync(join(work, 'full', 'trainer.json'), 'utf8'));
    const resumedState = JSON.parse(readFileSync(join(killedDir, 'trainer.json'), 'utf8'));
    assert.deepEqual(resumedState.history, fullState.history, 'identical loss curve at every evaluation');
    assert.deepEqual(readFileSync(join(killedDir, 'model.safetensors')), readFileSync(join(work, 'full', 'model.safetensors')), 'identical final weights');
  });
});

describe('attn bench', () => {
  it('times the skinny products (decoding\'s x·Wᵀ) for every row count, and names an unknown workload', () => {
    const r = runAttn(['bench', '--workloads', 'skinny', '--steps', '1', '--threads', '1', '--no-torch', '--json'], work);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { workload: string; rows: number; gflops: number });
    assert.deepEqual(rows.map((x) => x.rows), [1, 4, 16, 64, 256]);
    for (const x of rows) assert.ok(x.workload === 'skinny' && x.gflops > 0, JSON.stringify(x));
    assertUserError(runAttn(['bench', '--workloads', 'skinny,warp', '--no-torch'], work), /unknown workload "warp"/);
  });

  it('skips the recipe workload with a message when there is no corpus, and rejects bad seeds', () => {
    const r = runAttn(['bench', '--workloads', 'recipe', '--no-torch'], work);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /recipe: skipped \(.*tinyshakespeare\.txt not found; pass --text FILE\)/);
    assertUserError(runAttn(['bench', '--workloads', 'recipe', '--seeds', '1,x', '--no-torch'], work), /--seeds: expected non-negative integers/);
  });

  it('refuses a speculative target width the bench has no pair for, naming the ones it has', () => {
    assertUserError(runAttn(['bench', '--workloads', 'speculative', '--target-width', '128,256', '--no-torch'], work), /--target-width: no 12-layer target of width "256" \(128, 384\)/);
  });

  it('refuses a speculative draft width that is not a whole multiple of its 4 heads', () => {
    assertUserError(runAttn(['bench', '--workloads', 'speculative', '--draft-width', '130', '--no-torch'], work), /--draft-width: "130" is not a whole multiple of 4/);
  });
});

describe('bad input gets one clear line and a non-zero exit', () => {
  it('missing, empty and too-short data files', () => {
    assertUserError(attn(['train', '--data', join(work, 'nope.txt'), '--out', join(work, 'x')]), /cannot read data file .*nope\.txt: no such file/);
    const empty = join(work, 'empty.txt');
    writeFileSync(empty, '');
    assertUserError(attn(['train', '--data', empty, '--out', join(work, 'x')]), /is empty/);
    const short = join(work, 'short.txt');
    writeFileSync(short, 'hello world, too short');
    assertUserError(attn(['train', '--data', short, '--out', join(work, 'x')]), /text too short/);
    const bin = join(work, 'bin.txt');
    writeFileSync(bin, Buffer.from([0xff, 0xfe, 0x00, 0xc3]));
    assertUserError(attn(['train', '--data', bin, '--out', join(work, 'x')]), /not valid UTF-8/);
    assertUserError(attn(['train', '--out', join(work, 'x')]), /needs --data/);
  });

  it('non-numeric and out-of-range flags', () => {
    assertUserError(attn(['train', '--data', corpus, '--lr', 'abc']), /"abc" is not a number/);
    assertUserError(attn(['train', '--data', corpus, '--n-layer', '2.5']), /not an integer/);
    assertUserError(attn(['train', '--data', corpus, '--n-embd', '30', '--n-head', '4']), /divisible by n_head/);
    assertUserError(attn(['train', '--data', corpus, '--lr', '-1']), /--lr: .*greater than 0/);
    assertUserError(attn(['train', '--data', corpus, '--dropout', '1']), /--dropout/);
    assertUserError(attn(['train', '--data', corpus, '--frobnicate']), /unknown option/);
    assertUserError(attn(['sample', '--model', join(work, 'm1'), '--top-p', '1.5']), /--top-p/);
  });

  it('an --out directory that is not a checkpoint is never overwritten', () => {
    const mine = join(work, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'notes.txt'), 'keep me');
    assertUserError(attn(['train', '--data', corpus, '--out', mine, ...TINY, '--max-iters', '1']), /not an attn model directory/);
    assert.equal(readFileSync(join(mine, 'notes.txt'), 'utf8'), 'keep me');
  });

  it('model directories that are missing, incomplete, corrupt or inconsistent', () => {
    assertUserError(attn(['sample', '--model', join(work, 'absent')]), /does not exist/);
    const noConfig = join(work, 'noconfig');
    mkdirSync(noConfig);
    assertUserError(attn(['sample', '--model', noConfig]), /has no config\.json/);

    const src = join(work, 'm1');
    const bad = (name: string) => {
      const d = join(work, name);
      mkdirSync(d);
      for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) writeFileSync(join(d, f), readFileSync(join(src, f)));
      return d;
    };
    const truncated = bad('truncated');
    const bytes = readFileSync(join(truncated, 'model.safetensors'));
    writeFileSync(join(truncated, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
    assertUserError(attn(['sample', '--model', truncated]), /truncated/);

    const garbage = bad('garbage');
    writeFileSync(join(garbage, 'model.safetensors'), Buffer.from('not a safetensors file at all'));
    assertUserError(attn(['sample', '--model', garbage]), /model\.safetensors/);

    const mismatch = bad('mismatch');
    const cfg = JSON.parse(readFileSync(join(mismatch, 'config.json'), 'utf8'));
    writeFileSync(join(mismatch, 'config.json'), JSON.stringify({ ...cfg, n_embd: 32 }));
    assertUserError(attn(['sample', '--model', mismatch]), /has shape \[\d+,16\] but the config needs \[\d+,32\]/);

    const other = bad('bert');
    writeFileSync(join(other, 'config.json'), JSON.stringify({ model_type: 'bert' }));
    assertUserError(attn(['sample', '--model', other]), /architecture "bert" is not supported/);

    assertUserError(attn(['sample', '--model', src, '--prompt', 'zzz€']), /--prompt: .*not in the tokenizer's vocabulary/);
  });

  it('a NaN loss stops training with a clear message and keeps the last good checkpoint', () => {
    const dir = join(work, 'nan');
    assert.equal(attn(['train', '--data', corpus, '--out', dir, ...TINY, '--max-iters', '10', '--eval-interval', '10']).code, 0);
    // Plant a huge (finite, valid) weight: the next forward pass overflows to Inf/NaN.
    const file = readSafetensors(join(dir, 'model.safetensors'));
    (file.tensors.get('h.0.ln_2.weight')!.data as Float32Array).fill(3e38);
    writeSafetensors(join(dir, 'model.safetensors'), file.tensors, file.metadata);
    const before = readFileSync(join(dir, 'model.safetensors'));
    const r = attn(['train', '--resume', dir, '--max-iters', '20']);
    assertUserError(r, /training diverged: loss is not finite at step 11.*last good checkpoint is kept in/);
    assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), before, 'checkpoint untouched');
  });
});

describe('attn --help', () => {
  it('states each default once (commander adds "(default: …)" to an option with a default value)', () => {
    for (const args of [['sft', '--help'], ['seq2seq', 'eval', '--help'], ['rag', 'index', '--help']]) {
      const r = attn(args);
      assert.equal(r.code, 0, r.stderr);
      const text = r.stdout.replace(/\s+/g, ' ');
      assert.match(text, /\(default: /, args.join(' '));
      assert.doesNotMatch(text, /\(default:? ([^)]*)\) \(default: \1\)/, args.join(' '));
    }
    assert.match(attn(['sft', '--help']).stdout.replace(/\s+/g, ' '), /cut at line ends \(default: 96\)/);
  });
});
