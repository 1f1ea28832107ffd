import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';

/**
 * The options a model directory was trained with (the `options` of its
 * trainer.json), parsed by the trainer's own `parse`, so that eval rebuilds
 * the test split that training scored (its seed, held-out fraction, sizes).
 * A directory without trainer.json (a model saved by a program) gets the
 * defaults; one whose trainer.json is there but unreadable is an error:
 * falling back to the defaults would silently score another test set.
 */
export function trainedOptions<T>(modelDir: string, parse: (raw: Record<string, unknown>) => T): T {
  const path = join(modelDir, 'trainer.json');
  if (!existsSync(path)) return parse({});
  let record: unknown;
  try {
    record = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    // JSON.parse quotes the text it choked on, line breaks included: the error stays one line.
    throw new UserError(`${path}: not readable JSON (${(e as Error).message.replace(/\s+/g, ' ')}); it says how the model was trained, so eval can rebuild its test set`);
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new UserError(`${path}: not a JSON object`);
  const options = (record as { options?: unknown }).options ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new UserError(`${path}: "options" is not an object`);
  try {
    return parse(options as Record<string, unknown>);
  } catch (e) {
    throw new UserError(`${path}: ${(e as Error).message}`);
  }
}
