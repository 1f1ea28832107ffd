/**
 * Preference data for a reward model and DPO: JSON Lines, one comparison a
 * row, `{"prompt": "…", "chosen": "…", "rejected": "…"}` — two answers to
 * one prompt, the first preferred by whoever labelled it.
 */
import { UserError } from '../util/errors.js';
import { parseJsonLines } from './instructions_file.js';

export interface PreferenceRow {
  row: number;
  prompt: string;
  chosen: string;
  rejected: string;
}

/** Check one row: three strings, and two answers that really differ (else there is no preference to learn). */
export function parsePreferenceRow(value: unknown, row: number, source: string): PreferenceRow {
  const where = `${source}: row ${row}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${where} must be an object {"prompt", "chosen", "rejected"}`);
  const o = value as Record<string, unknown>;
  for (const key of ['prompt', 'chosen', 'rejected']) {
    if (typeof o[key] !== 'string') throw new UserError(`${where} needs a "${key}" string`);
  }
  if (o.chosen === o.rejected) throw new UserError(`${where}: "chosen" and "rejected" are the same answer, so there is no preference to learn`);
  return { row, prompt: o.prompt as string, chosen: o.chosen as string, rejected: o.rejected as string };
}

/** Check a whole preference file's text (`source` names it in messages). */
export function parsePreferenceRows(text: string, source: string): PreferenceRow[] {
  return parseJsonLines(text, source).map(({ row, value }) => parsePreferenceRow(value, row, source));
}
