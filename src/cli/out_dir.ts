import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';

/** Refuse to replace a directory that is not a model directory: it may hold the user's files. */
export function checkOutDir(out: string): void {
  if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, 'config.json'))) {
    throw new UserError(`--out ${out} exists and is not an attn model directory; choose another path`);
  }
}
