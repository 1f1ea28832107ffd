import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { writeDirAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { hfFiles } from '../io/hf_export.js';
import { loadGPT } from '../io/model_dir.js';
import { dequantize } from '../nn/quantized_linear.js';

/** Refuse to replace a directory that does not look like a model: it may hold the user's files. */
export function checkOutDir(out: string, flag = '--out'): void {
  if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, 'config.json'))) {
    throw new UserError(`${flag} ${out} exists and is not a model directory; choose another path`);
  }
}

/** Write a model directory in Hugging Face GPT-2 layout; returns notes for the user. */
export function runExport(o: { model: string; to: string; out: string }): string[] {
  if (o.to !== 'hf') throw new UserError(`--to ${o.to}: only "hf" (Hugging Face GPT-2 layout) is supported`);
  checkOutDir(o.out);
  const { model, tokenizer } = loadGPT(o.model, 'attn export');
  dequantize(model); // GPT-2's format holds fp32 matrices: an int8 model exports its dequantized weights
  const { files, notes } = hfFiles(model, tokenizer);
  writeDirAtomic(o.out, files);
  return notes;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model as a Hugging Face GPT-2 directory (the layout GPT2LMHeadModel.from_pretrained expects)')
    .requiredOption('--model <dir>', 'model directory to export')
    .addOption(new Option('--to <format>', 'target layout').choices(['hf']).default('hf'))
    .requiredOption('--out <dir>', 'directory to write')
    .action((o: { model: string; to: string; out: string }) => {
      for (const n of runExport(o)) process.stderr.write(`note: ${n}\n`);
      process.stdout.write(`wrote ${o.out}\n`);
    });
}
