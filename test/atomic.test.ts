import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { recoverDir, writeDirAtomic, writeFileAtomic } from '../src/io/atomic.js';

const work = mkdtempSync(join(tmpdir(), 'attn-atomic-'));
after(() => rmSync(work, { recursive: true, force: true }));
const DEAD = 2147483646; // no process has this id

describe('atomic writes', () => {
  it('a swap killed between its two renames is finished by recoverDir, and its leftovers go with the next save', () => {
    const dir = join(work, 'ckpt');
    writeDirAtomic(dir, { 'a.txt': 'one' });
    // What a save killed (SIGKILL) after its first rename leaves: the old copy aside, the new one complete, no `dir`.
    writeDirAtomic(join(work, `ckpt.tmp-${DEAD}`), { 'a.txt': 'two' });
    renameSync(dir, join(work, `ckpt.old-${DEAD}`));
    recoverDir(dir);
    assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'two', 'the finished new copy is put in place');
    assert.deepEqual(readdirSync(work).filter((n) => n.startsWith('ckpt')).sort(), ['ckpt', `ckpt.old-${DEAD}`]);
    // A save by a process still running (this one, through another writer) is in progress: left alone.
    mkdirSync(join(work, `ckpt.tmp-${process.ppid}`));
    writeDirAtomic(dir, { 'a.txt': 'three' });
    assert.deepEqual(readdirSync(work).filter((n) => n.startsWith('ckpt')).sort(), ['ckpt', `ckpt.tmp-${process.ppid}`]);
    assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'three');
  });

  it('a file write removes the temp file a killed write of it left, and nothing with another name', () => {
    const path = join(work, 'f.json');
    for (const name of [`f.json.tmp-${DEAD}`, `f.json.tmp-${DEAD}.bak`, `g.json.tmp-${DEAD}`]) writeFileSync(join(work, name), 'x');
    writeFileAtomic(path, '{}');
    assert.deepEqual(readdirSync(work).filter((n) => /^[fg]\.json/.test(n)).sort(), ['f.json', `f.json.tmp-${DEAD}.bak`, `g.json.tmp-${DEAD}`]);
  });
});
