import { readTextFile } from '../io/read_text.js';
import { useBackend, useBackendAsync } from './backend_flags.js';
import { Progress } from './progress.js';
import { checkOutDir } from './out_dir.js';

/**
 * What `attn sft`, `attn reward train` and `attn dpo` do before they train:
 * read the data file once (its text is also recorded for --resume), parse
 * its rows, check --out, choose the backend, and make the progress printer
 * that --quiet silences.
 */
export function startFineTuneRun<Row>(
  a: { data: string; out: string; quiet?: boolean; backend?: string; threads?: number },
  logInterval: number,
  parseRows: (text: string, source: string) => Row[],
) {
  const run = readFineTuneRun(a, logInterval, parseRows);
  return { ...run, description: useBackend(a).description };
}

/** startFineTuneRun for a trainer that runs on any backend: webgpu's device is opened after the data is checked. */
export async function startFineTuneRunAsync<Row>(
  a: { data: string; out: string; quiet?: boolean; backend?: string; threads?: number },
  logInterval: number,
  parseRows: (text: string, source: string) => Row[],
) {
  const run = readFineTuneRun(a, logInterval, parseRows);
  return { ...run, description: (await useBackendAsync(a)).description };
}

function readFineTuneRun<Row>(a: { data: string; out: string; quiet?: boolean }, logInterval: number, parseRows: (text: string, source: string) => Row[]) {
  const dataText = readTextFile(a.data);
  const rows = parseRows(dataText, a.data);
  checkOutDir(a.out, 'language-model');
  const progress = new Progress(logInterval);
  const say = (s: string): void => {
    if (!a.quiet) progress.line(s);
  };
  return { dataText, rows, progress, say };
}
