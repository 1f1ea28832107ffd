import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { parsePreferenceRows } from '../data/preferences_file.js';
import { readTextFile } from '../io/read_text.js';
import { dpo, dpoAsync, DPO_STATE_FILE, dpoEvaluateAsync, referenceLogProbsAsync, type DpoEvents, type DpoRun, type DpoState, type DpoSummary } from '../train/dpo_trainer.js';
import { encodePreferences } from '../train/reward_trainer.js';
import { loadDecoder } from '../train/sft_checkpoint.js';
import { heldOutSplit } from '../train/sft_data.js';
import { UserError } from '../util/errors.js';
import { moveToBackend } from '../nn/placement.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { num, seed } from './flags.js';
import { startFineTuneRun, startFineTuneRunAsync } from './fine_tune_run.js';
import type { Progress } from './progress.js';
import { fineTuneOptionsFrom, loraFrom, stepInfo, withFineTuneFlags, withLoRAFlags } from './sft.js';

export interface DpoCliArgs {
  init?: string;
  resume?: string;
  data: string;
  out: string;
  beta: number;
  nllWeight?: number;
  backend?: string;
  threads?: number;
  quiet?: boolean;
}

/** `attn dpo`: the library call behind the command (also used by `attn align demo`). Host backends. */
export function runDpo(a: DpoCliArgs, opts: Record<string, unknown>): DpoSummary {
  const r = startFineTuneRun(a, fineTuneOptionsFrom(opts).logInterval, parsePreferenceRows);
  return dpo(dpoRun(a, opts, r), dpoEvents(a, opts, r));
}

/** runDpo on any backend, webgpu included. */
export async function runDpoAsync(a: DpoCliArgs, opts: Record<string, unknown>): Promise<DpoSummary> {
  const r = await startFineTuneRunAsync(a, fineTuneOptionsFrom(opts).logInterval, parsePreferenceRows);
  return dpoAsync(dpoRun(a, opts, r), dpoEvents(a, opts, r));
}

function dpoRun(a: DpoCliArgs, opts: Record<string, unknown>, r: { dataText: string; rows: ReturnType<typeof parsePreferenceRows> }): DpoRun {
  const options = fineTuneOptionsFrom(opts);
  const lora = a.resume ? undefined : loraFrom(opts);
  return { rows: r.rows, dataPath: a.data, dataText: r.dataText, options, beta: a.beta, nllWeight: a.nllWeight ?? 0, out: a.out, ...(a.init ? { init: a.init } : {}), ...(a.resume ? { resume: a.resume } : {}), ...(lora ? { lora } : {}) };
}

function dpoEvents(a: DpoCliArgs, opts: Record<string, unknown>, r: { description: string; progress: Progress; say(s: string): void }): DpoEvents {
  const { description, progress, say } = r;
  const { logInterval } = fineTuneOptionsFrom(opts);
  return {
    onStart: (i) => say(`${i.resumedFrom ? `resuming from step ${i.resumedFrom}` : 'DPO'}: ${(i.params / 1e6).toFixed(2)}M parameters (${(i.trainable / 1e6).toFixed(3)}M trained), ${i.trainRows} train / ${i.valRows} held-out pairs, β ${a.beta}, backend ${description}`),
    onStep: (p) => {
      if (a.quiet) return;
      progress.step(stepInfo(p));
      if (p.step % logInterval === 0) progress.line(`  step ${p.step}: preference accuracy ${(100 * p.accuracy).toFixed(0)}%, reward margin ${p.margin.toFixed(3)}`);
    },
    onEval: (e) => say(`val step ${e.step}: held-out DPO loss ${e.loss.toFixed(4)}, preference accuracy ${(100 * e.accuracy).toFixed(1)}%, reward margin ${e.margin.toFixed(3)} (chosen ${e.chosenReward.toFixed(3)}, rejected ${e.rejectedReward.toFixed(3)})`),
    onCheckpoint: (c) => say(`saved checkpoint at step ${c.step} to ${c.dir}`),
  };
}

export function dpoCommand(): Command {
  const cmd = new Command('dpo')
    .enablePositionalOptions()
    .description('Direct Preference Optimization on {"prompt", "chosen", "rejected"} rows: reference log-probabilities computed once, the policy\'s on reply tokens only; logs preference accuracy and reward margins')
    .option('--init <dir>', 'the model to optimize (usually the SFT model); also the reference')
    .option('--resume <dir>', 'continue this checkpoint')
    .option('--data <file>', 'JSON Lines preference rows')
    .option('--out <dir>', 'checkpoint directory', 'dpo-out')
    .option('--beta <x>', 'β: how far the policy may move from the reference (larger: stays closer)', num, 0.1)
    .option('--nll-weight <x>', 'add this times the chosen replies\' per-token NLL to the loss (RPO); 0 is plain DPO', num, 0);
  withFineTuneFlags(withLoRAFlags(withBackendFlags(cmd, { webgpu: true })));
  cmd.action(async (opts: Record<string, unknown>) => {
    if (!opts.data) throw new UserError('dpo needs --data FILE.jsonl');
    if (!opts.init === !opts.resume) throw new UserError('dpo needs --init DIR or --resume DIR, not both');
    const out = cmd.getOptionValueSource('out') === 'cli' || !opts.resume ? (opts.out as string) : (opts.resume as string);
    const summary = await runDpoAsync(
      { ...(opts.init ? { init: opts.init as string } : {}), ...(opts.resume ? { resume: opts.resume as string } : {}), data: opts.data as string, out, beta: opts.beta as number, nllWeight: opts.nllWeight as number, backend: opts.backend as string, ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}) },
      opts,
    );
    process.stdout.write(JSON.stringify(summary) + '\n');
  });
  const evaluate = withBackendFlags(new Command('eval'), { webgpu: true })
    .description('preference accuracy and reward margins of a model against its reference on held-out rows (those `attn dpo` held out)')
    .requiredOption('--model <dir>', 'the optimized model')
    .requiredOption('--data <file>', 'JSON Lines preference rows')
    .option('--ref <dir>', 'the reference model (default: the --init recorded in the model\'s dpo.json)')
    .option('--beta <x>', 'β (default: the run\'s, else 0.1)', num)
    .option('--all', 'every row, not only the held-out ones')
    .option('--seed <n>', 'split seed when the model has no dpo.json (default 1337)', seed)
    .action(async (o: { model: string; data: string; ref?: string; beta?: number; all?: boolean; seed?: number; backend?: string; threads?: number }) => {
      await useBackendAsync(o);
      const statePath = join(o.model, DPO_STATE_FILE);
      const state = existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as DpoState) : null;
      const refDir = o.ref ?? state?.init;
      if (!refDir) throw new UserError(`${o.model} has no dpo.json naming its reference: pass --ref DIR`);
      const rows = parsePreferenceRows(readTextFile(o.data), o.data);
      const { model, tokenizer } = loadDecoder(o.model, '--model');
      const reference = loadDecoder(refDir, '--ref');
      let picked = rows;
      if (!o.all) {
        const held = new Set(state?.heldOut ?? heldOutSplit(rows.length, 0.1, o.seed ?? 1337, rows.map((r) => r.prompt)).val.map((i) => rows[i]!.row));
        picked = rows.filter((r) => held.has(r.row));
      }
      if (reference.tokenizer.vocabSize !== tokenizer.vocabSize) throw new UserError(`--ref ${refDir} has a vocabulary of ${reference.tokenizer.vocabSize}, the model ${tokenizer.vocabSize}: not its reference`);
      const pairs = encodePreferences(tokenizer, picked, model.config.block_size, o.data);
      moveToBackend(reference.model);
      const ref = await referenceLogProbsAsync(reference.model, pairs);
      moveToBackend(model);
      const r = await dpoEvaluateAsync(model, pairs, ref, o.beta ?? state?.beta ?? 0.1);
      process.stdout.write(JSON.stringify({ loss: r.loss, preference_accuracy: r.accuracy, reward_margin: r.margin, chosen_reward: r.chosenReward, rejected_reward: r.rejectedReward, rows: pairs.length }) + '\n');
    });
  cmd.addCommand(evaluate.exitOverride().showHelpAfterError('(run with --help for usage)'));
  return cmd;
}
