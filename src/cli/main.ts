#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.js';
import { benchCommand, benchWorkerCommand } from './bench.js';
import { chatCommand } from './chat.js';
import { demoCommand } from './demo.js';
import { embedCommand } from './embed.js';
import { evalCommand } from './eval.js';
import { evalsCommand } from './evals.js';
import { inspectCommand } from './inspect.js';
import { exportCommand } from './export.js';
import { mergeCommand } from './merge.js';
import { pullCommand } from './pull.js';
import { quantizeCommand } from './quantize.js';
import { ragCommand } from './rag.js';
import { planCommand } from './plan.js';
import { referenceCommand } from './reference.js';
import { sampleCommand } from './sample.js';
import { seq2seqCommand, translateCommand } from './seq2seq.js';
import { serveCommand } from './serve.js';
import { sftCommand } from './sft.js';
import { rewardCommand } from './reward.js';
import { dpoCommand } from './dpo.js';
import { alignCommand } from './align.js';
import { tokenizeCommand, tokenizerCommand } from './tokenize.js';
import { trainCommand } from './train.js';
import { vitCommand } from './vit.js';
import { pointcloudCommand } from './pointcloud.js';
import { captionCommand } from './caption.js';
import { webCommand } from './web.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('attn')
  .description('transformers from scratch in TypeScript: GPT, encoder–decoder, ViT and sentence embedders — train, sample, translate, classify, embed, serve, and check against PyTorch')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  // Options after a command name belong to that command, so `attn sft eval --data F` reaches eval, not sft.
  .enablePositionalOptions()
  .exitOverride();

for (const cmd of [trainCommand(), sampleCommand(), chatCommand(), tokenizeCommand(), tokenizerCommand(), referenceCommand(), demoCommand(), benchCommand(), evalCommand(), evalsCommand(), inspectCommand(), exportCommand(), mergeCommand(), quantizeCommand(), pullCommand(), embedCommand(), ragCommand(), seq2seqCommand(), translateCommand(), vitCommand(), pointcloudCommand(), captionCommand(), serveCommand(), sftCommand(), rewardCommand(), dpoCommand(), alignCommand()]) {
  program.addCommand(cmd.exitOverride().showHelpAfterError('(run with --help for usage)'));
}

program.addCommand(planCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
program.addCommand(webCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
program.addCommand(benchWorkerCommand(), { hidden: true });
oneLineErrors(program);

/**
 * Every command, subcommands included: a parse error (a bad flag value, an
 * unknown option, a missing argument) is one line on stderr that ends with
 * where to look, and it throws instead of exiting, so that the catch below
 * sets the exit code.
 */
function oneLineErrors(cmd: Command): void {
  cmd.exitOverride().showHelpAfterError(false).configureOutput({
    outputError: (text, write) => write(`${text.trimEnd()} (run \`${commandPath(cmd)} --help\` for usage)\n`),
  });
  for (const sub of cmd.commands) oneLineErrors(sub);
}

/** A command as typed, e.g. `attn rag index`. */
function commandPath(cmd: Command): string {
  const words: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) words.unshift(c.name());
  return words.join(' ');
}

// A reader that stops early (`attn tokenize … | head`) closes stdout: whatever the command still
// had to print has nowhere to go, so it ends there, quietly, instead of with an EPIPE stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander has already printed its message (or the help/version text).
    process.exitCode = e.exitCode;
  } else if (e instanceof RangeError && /Array buffer allocation failed|Invalid typed array length/.test(e.message)) {
    // Sizes that passed every check but not the allocator (a batch, a context, a model too large for this machine).
    process.stderr.write(`attn: error: out of memory: ${e.message}; choose a smaller batch, context or model\n`);
    process.exitCode = 1;
  } else if (e instanceof UserError) {
    // One line, whatever the message quotes (a JSON parser's excerpt of the text brings its newlines).
    process.stderr.write(`attn: error: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
    process.exitCode = 1;
  } else {
    throw e;
  }
}
