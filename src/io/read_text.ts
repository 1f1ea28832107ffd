import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.js';

/** Read a UTF-8 training text, with one clear error for each way it can be unusable. */
export function readTextFile(path: string): string {
  let bytes: Buffer;
  try {
    if (statSync(path).isDirectory()) throw new UserError(`data file ${path} is a directory`);
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new UserError(`cannot read data file ${path}: ${why}`);
  }
  if (bytes.length === 0) throw new UserError(`data file ${path} is empty`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`data file ${path} is not valid UTF-8 text`);
  }
}
