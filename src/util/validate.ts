import type { z } from 'zod';
import { UserError } from './errors.js';

/**
 * Validate with a zod schema, turning zod's report into one readable line
 * that names the bad key ("config.json: n_head: …"). Every config schema of
 * attn (GPT, Transformer, ViT, embedder) goes through here.
 */
export function parseConfig<S extends z.ZodTypeAny>(schema: S, raw: unknown, source = 'config'): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  throw new UserError(`${source}: ${where}${issue.message}`);
}

/** The same for command options: the message names the flag (camelCase key → --kebab-case). */
export function parseFlags<S extends z.ZodTypeAny>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const flag = issue.path.length ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: ` : '';
  throw new UserError(`${flag}${issue.message}`);
}
