import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../util/errors.js';

const MARKER = '.complete';

/** Replace one file atomically: write a temp sibling, fsync, rename over the target. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  writeFileAtomicWith(path, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

/**
 * Check that `path` can be written as one file: it is not a directory, and
 * its directory exists (missing directories are not created for a file: a
 * mistyped path should not leave new folders behind). The writers here check
 * too; a command calls it first, with its flag, to fail before its work.
 */
export function checkOutFile(path: string, flag?: string): void {
  const what = flag ? `${flag} ${path}` : path;
  // An empty name passes the checks below (its "parent" is the working directory's) and fails at the rename, after the work.
  if (path === '') throw new UserError(`${flag ?? 'the output file name'} is empty: give a file name`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new UserError(`${what} is a directory; give a file name`);
  const parent = dirname(resolve(path));
  if (!existsSync(parent)) throw new UserError(`${what}: directory ${dirname(path)} does not exist; create it first`);
  if (!statSync(parent).isDirectory()) throw new UserError(`${what}: ${dirname(path)} is not a directory`);
}

/**
 * writeFileAtomic for a file written piece by piece (one too large for one
 * buffer): `write` writes the temp file through its descriptor, then it is
 * fsynced and renamed over `path`.
 */
export function writeFileAtomicWith(path: string, write: (fd: number) => void): void {
  checkOutFile(path);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
  removeStaleSiblings(path);
}

/** Write and fsync: the bytes are on disk before anything is renamed over them. */
export function writeFileDurable(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** Make renames in `dir` durable; best effort (not every platform can fsync a directory). */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some platforms cannot fsync a directory; the renames are still atomic.
  }
}

/**
 * Replace directory `dir` with `files` so that a crash at any moment leaves
 * either the old complete directory or the new complete one — never a mix of
 * files from two checkpoints. The new files are written and fsynced in a
 * sibling folder, then swapped in with two renames; recoverDir() finishes an
 * interrupted swap.
 */
export function writeDirAtomic(dir: string, files: Record<string, Uint8Array | string>): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `${basename(dir)}.tmp-${process.pid}`);
  const old = join(parent, `${basename(dir)}.old-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const [name, data] of Object.entries(files)) writeFileDurable(join(tmp, name), data);
  writeFileDurable(join(tmp, MARKER), '');
  fsyncDir(tmp);
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  fsyncDir(parent);
  rmSync(old, { recursive: true, force: true });
  removeStaleSiblings(dir);
}

/**
 * If a process died between the two renames of writeDirAtomic, `dir` is
 * missing but a complete sibling exists: move it back into place.
 */
export function recoverDir(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  const siblings = tempSiblings(dir);
  // Prefer a finished new checkpoint over the old one.
  siblings.sort((a, b) => Number(b.includes('.tmp-')) - Number(a.includes('.tmp-')));
  for (const name of siblings) {
    const candidate = join(parent, name);
    if (existsSync(join(candidate, MARKER))) {
      renameSync(candidate, dir);
      return;
    }
  }
}

/** The names beside `path` that a write of it makes for a while: PATH.tmp-PID (the new one) and PATH.old-PID (the one it replaces). */
function tempSiblings(path: string): string[] {
  const base = basename(path);
  return readdirSync(dirname(path)).filter((n) => /^\.(tmp|old)-\d+$/.test(n.slice(base.length)) && n.startsWith(base));
}

/**
 * Once `path` is complete, remove what writes of it by processes that are
 * gone left beside it (killed between writing a temp copy and renaming it:
 * SIGKILL, a power cut, an interrupted download). A sibling of a process
 * still running is its write in progress, and is left alone.
 */
export function removeStaleSiblings(path: string): void {
  if (!existsSync(path)) return;
  for (const name of tempSiblings(path)) {
    const pid = Number(name.slice(name.lastIndexOf('-') + 1));
    if (pid !== process.pid && !processRunning(pid)) rmSync(join(dirname(path), name), { recursive: true, force: true });
  }
}

/** Whether a process with this id exists (one of another user's counts: it cannot be signalled, but it is there). */
function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
