import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../util/errors.js';

/**
 * Check a directory a command will write before any work is done: it must
 * not be a file, nor lie under one (missing parents are created), and an
 * existing directory that is not a model directory is refused: it may hold
 * the user's files.
 */
export function checkOutDir(out: string, flag = '--out'): void {
  checkDirPath(out, flag);
  if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, 'config.json'))) {
    throw new UserError(`${flag} ${out} exists and is not an attn model directory; choose another path`);
  }
}

/** A directory to write into (made, with its parents, if missing): neither it nor its nearest existing ancestor may be a file. */
export function checkDirPath(out: string, flag = '--out'): void {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UserError(`${flag} ${out} is a file, not a directory; choose another path`);
    return;
  }
  let parent = dirname(out);
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  if (existsSync(parent) && !statSync(parent).isDirectory()) throw new UserError(`${flag} ${out}: ${parent} is a file, not a directory; choose another path`);
}

/** Refuse an --out that is the --model being read: writing it would replace the source (and drop its training state). */
export function checkNotSource(out: string, model: string): void {
  if (existsSync(out) && existsSync(model) && realpathSync(out) === realpathSync(model)) {
    throw new UserError(`--out ${out} is the source model's ${statSync(model).isDirectory() ? 'directory' : 'file'}: write to another one`);
  }
}

/** A directory a command reads (--data DIR): say so when the path is a file, not "no such directory". */
export function checkInDir(dir: string, flag = '--data'): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`${flag} ${dir} is a file, not a directory`);
}
