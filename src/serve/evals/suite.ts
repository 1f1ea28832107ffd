import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../../util/errors.js';
import { checkSchema } from './json_schema.js';

/**
 * An evaluation suite: a JSONL file, one case per line. A case is a prompt
 * (`prompt`, or chat `messages`, with an optional `system`) and how to score
 * the answer (`score`): exact text, a regular expression, a JSON schema the
 * answer must parse and validate against, a number within a tolerance, or a
 * judge model's grade against a rubric. Lines that are empty or start with
 * `//` are skipped. Every error names the file, the line and the field.
 */

const Exact = z.object({ type: z.literal('exact'), expected: z.string(), ignore_case: z.boolean().default(false), trim: z.boolean().default(true) }).strict();
const Regex = z
  .object({ type: z.literal('regex'), pattern: z.string().min(1), flags: z.string().regex(/^[imsu]*$/, 'only the flags i, m, s, u').default('') })
  .strict()
  .superRefine((r, ctx) => {
    try {
      new RegExp(r.pattern, r.flags);
    } catch (e) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['pattern'], message: `not a valid regular expression: ${(e as Error).message}` });
    }
  });
const JsonSchema = z
  .object({ type: z.literal('json_schema'), schema: z.union([z.record(z.string(), z.unknown()), z.boolean()]) })
  .strict()
  .superRefine((r, ctx) => {
    try {
      checkSchema(r.schema);
    } catch (e) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['schema'], message: (e as Error).message });
    }
  });
const Numeric = z.object({ type: z.literal('numeric'), expected: z.number().finite(), tolerance: z.number().nonnegative().default(0), relative: z.boolean().default(false) }).strict();
const Judge = z.object({ type: z.literal('judge'), rubric: z.string().min(1).optional(), reference: z.string().optional(), pass_score: z.number().min(0).max(1).default(0.7) }).strict();

const SCORERS = { exact: Exact, regex: Regex, json_schema: JsonSchema, numeric: Numeric, judge: Judge } as const;

/** Picks the scorer by `type` first, so that an error names the field of that scorer. */
const ScoreSchema = z
  .object({ type: z.enum(['exact', 'regex', 'json_schema', 'numeric', 'judge']) })
  .passthrough()
  .transform((s, ctx) => {
    const r = (SCORERS[s.type] as z.ZodTypeAny).safeParse(s);
    if (!r.success) {
      for (const issue of r.error.issues) ctx.addIssue({ ...issue, message: issue.message } as z.IssueData);
      return z.NEVER;
    }
    return r.data as Scorer;
  });

const Message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() }).strict();

export const CaseSchema = z
  .object({
    id: z.string().min(1).max(128).optional(),
    /** Task type, for the per-task summary (and sent as metadata.task). */
    task: z.string().regex(/^[\w.:/-]{1,64}$/, '1–64 letters, digits or _.:/-').optional(),
    prompt: z.string().optional(),
    messages: z.array(Message).min(1).optional(),
    system: z.string().optional(),
    score: ScoreSchema,
    max_tokens: z.number().int().positive().optional(),
    temperature: z.number().min(0).max(2).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.prompt === undefined) === (c.messages === undefined)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['prompt'], message: 'give either "prompt" or "messages"' });
  });

export type EvalCase = z.infer<typeof CaseSchema> & { id: string; score: Scorer };

export type Scorer =
  | z.infer<typeof Exact>
  | { type: 'regex'; pattern: string; flags: string }
  | { type: 'json_schema'; schema: Record<string, unknown> | boolean }
  | z.infer<typeof Numeric>
  | z.infer<typeof Judge>;

const where = (path: Array<string | number>): string => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

export function parseSuite(text: string, source: string): EvalCase[] {
  const cases: EvalCase[] = [];
  const ids = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('//')) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new UserError(`${source}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    // The score's own schema is checked by type, so that an error names the right field.
    const r = CaseSchema.safeParse(json);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new UserError(`${source}:${i + 1}: ${where(issue.path) || '(case)'}: ${issue.message}`);
    }
    const id = r.data.id ?? `case-${i + 1}`;
    if (ids.has(id)) throw new UserError(`${source}:${i + 1}: id "${id}" is used twice`);
    ids.add(id);
    cases.push({ ...r.data, id } as EvalCase);
  });
  if (cases.length === 0) throw new UserError(`${source}: no cases (one JSON object per line)`);
  return cases;
}

export function loadSuite(path: string): EvalCase[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`--suite ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseSuite(text, path);
}
