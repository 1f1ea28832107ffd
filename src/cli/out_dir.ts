import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { describeKind, modelKindOf, type ModelKind } from '../io/model_kinds.js';
import { UserError } from '../util/errors.js';

/**
 * Check a directory a command will write before any work is done: it must
 * not be a file, nor lie under one (missing parents are created). An
 * existing directory is replaced only when it holds a model of the `kind`
 * the command writes (an earlier run's output): one that is not a model
 * directory may hold the user's files, and one of another kind (a ViT where
 * a language model is to go) is not what the user meant to lose.
 */
export function checkOutDir(out: string, kind: ModelKind, flag = '--out'): void {
  checkDirPath(out, flag);
  if (!existsSync(out) || readdirSync(out).length === 0) return;
  if (!existsSync(join(out, 'config.json'))) throw new UserError(`${flag} ${out} exists and is not an attn model directory; choose another path`);
  const holds = modelKindOf(out);
  if (holds !== null && holds !== kind) {
    throw new UserError(`${flag} ${out} holds ${describeKind(holds)}, which writing ${describeKind(kind)} there would replace; choose another path`);
  }
}

/** A directory to write into (made, with its parents, if missing): neither it nor its nearest existing ancestor may be a file. */
export function checkDirPath(out: string, flag = '--out'): void {
  // "" is no path: the writers would make a temp folder in the working directory and fail at the rename, after the work.
  if (out === '') throw new UserError(`${flag} is empty: give a directory`);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UserError(`${flag} ${out} is a file, not a directory; choose another path`);
    return;
  }
  let parent = dirname(out);
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  if (existsSync(parent) && !statSync(parent).isDirectory()) throw new UserError(`${flag} ${out}: ${parent} is a file, not a directory; choose another path`);
}

/**
 * Refuse an --out that is the --model being read (writing it would replace
 * the source and drop its training state), that lies inside the model's
 * directory (the next save of that model replaces the directory, and the
 * output with it), or that holds the model (replacing --out deletes it).
 */
export function checkNotSource(out: string, model: string): void {
  if (!existsSync(model)) return;
  const what = statSync(model).isDirectory() ? 'directory' : 'file';
  const source = realpathSync(model);
  const target = realPathOf(out);
  if (target === source) throw new UserError(`--out ${out} is the source model's ${what}: write to another one`);
  if (what === 'directory' && target.startsWith(source + sep)) throw new UserError(`--out ${out} lies inside the source model's directory ${model}, which is replaced whole when that model is saved again: write elsewhere`);
  if (source.startsWith(target + sep)) throw new UserError(`--out ${out} holds the source model ${model}, which writing it would delete: write elsewhere`);
}

/** The real path `p` will have: its nearest existing ancestor resolved through links, then the rest as given. */
function realPathOf(p: string): string {
  const full = resolve(p);
  if (existsSync(full)) return realpathSync(full);
  const parent = dirname(full);
  return parent === full ? full : join(realPathOf(parent), basename(full));
}

/** A directory a command reads (--data DIR): say so when the path is a file, not "no such directory". */
export function checkInDir(dir: string, flag = '--data'): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`${flag} ${dir} is a file, not a directory`);
}

/**
 * An --out file that exists is replaced only when it is what the command
 * writes (`isOwn`: an earlier run's output); anything else may be the
 * user's (a model's config.json, notes), as checkOutDir says of folders.
 */
export function checkReplaceableFile(path: string, isOwn: (path: string) => boolean, what: string, flag = '--out'): void {
  if (existsSync(path) && statSync(path).isFile() && !isOwn(path)) throw new UserError(`${flag} ${path} exists and is not ${what}; choose another path`);
}
