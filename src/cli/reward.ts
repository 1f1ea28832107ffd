import { Command } from 'commander';
import { parsePreferenceRows } from '../data/preferences_file.js';
import { readTextFile } from '../io/read_text.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { encodePreferences, trainRewardModel, trainRewardModelAsync, type RewardEvents, type RewardRun, type RewardSummary } from '../train/reward_trainer.js';
import { loadRewardModel } from '../train/reward_model.js';
import { chatTemplateOf } from '../chat/for_tokenizer.js';
import { encodeConversation } from '../train/sft_data.js';
import { UserError } from '../util/errors.js';
import { moveToBackend } from '../nn/placement.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import type { Progress } from './progress.js';
import { fineTuneOptionsFrom, loraFrom, stepInfo, withFineTuneFlags, withLoRAFlags } from './sft.js';
import { startFineTuneRun, startFineTuneRunAsync } from './fine_tune_run.js';

export interface RewardCliArgs {
  init?: string;
  resume?: string;
  data: string;
  out: string;
  backend?: string;
  threads?: number;
  quiet?: boolean;
}

/** `attn reward train`: the library call behind the command (also used by `attn align demo`). Host backends. */
export function runRewardTrain(a: RewardCliArgs, opts: Record<string, unknown>): RewardSummary {
  const r = startFineTuneRun(a, fineTuneOptionsFrom(opts).logInterval, parsePreferenceRows);
  return trainRewardModel(rewardRun(a, opts, r), rewardEvents(a, r));
}

/** runRewardTrain on any backend, webgpu included. */
export async function runRewardTrainAsync(a: RewardCliArgs, opts: Record<string, unknown>): Promise<RewardSummary> {
  const r = await startFineTuneRunAsync(a, fineTuneOptionsFrom(opts).logInterval, parsePreferenceRows);
  return trainRewardModelAsync(rewardRun(a, opts, r), rewardEvents(a, r));
}

function rewardRun(a: RewardCliArgs, opts: Record<string, unknown>, r: { dataText: string; rows: ReturnType<typeof parsePreferenceRows> }): RewardRun {
  const lora = a.resume ? undefined : loraFrom(opts);
  return { rows: r.rows, dataPath: a.data, dataText: r.dataText, options: fineTuneOptionsFrom(opts), out: a.out, ...(a.init ? { init: a.init } : {}), ...(a.resume ? { resume: a.resume } : {}), ...(lora ? { lora } : {}) };
}

function rewardEvents(a: RewardCliArgs, r: { description: string; progress: Progress; say(s: string): void }): RewardEvents {
  const { description, progress, say } = r;
  return {
    onStart: (i) => say(`${i.resumedFrom ? `resuming from step ${i.resumedFrom}` : 'training a reward model'}: ${(i.params / 1e6).toFixed(2)}M parameters (${(i.trainable / 1e6).toFixed(3)}M trained), ${i.trainRows} train / ${i.valRows} held-out pairs, backend ${description}`),
    onStep: (p) => {
      if (!a.quiet) progress.step(stepInfo(p));
    },
    onEval: (e) => say(`val step ${e.step}: held-out loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(1)}%, mean margin ${e.margin.toFixed(3)}`),
    onCheckpoint: (c) => say(`saved checkpoint at step ${c.step} to ${c.dir}`),
  };
}

export function rewardCommand(): Command {
  const reward = new Command('reward').description('a reward model: a decoder with a scalar head, trained with the Bradley–Terry loss on {"prompt", "chosen", "rejected"} rows');
  const train = withLoRAFlags(withFineTuneFlags(withBackendFlags(new Command('train'), { webgpu: true })))
    .description('train a reward model from a decoder (usually the SFT model); prints held-out accuracy as it trains')
    .option('--init <dir>', 'the decoder to start from')
    .option('--resume <dir>', 'continue this checkpoint')
    .option('--data <file>', 'JSON Lines preference rows {"prompt", "chosen", "rejected"}')
    .option('--out <dir>', 'where to save the reward model', 'reward-out');
  train.action(async (opts: Record<string, unknown>) => {
    if (!opts.data) throw new UserError('reward train needs --data FILE.jsonl');
    if (!opts.init === !opts.resume) throw new UserError('reward train needs --init DIR or --resume DIR, not both');
    const out = train.getOptionValueSource('out') === 'cli' || !opts.resume ? (opts.out as string) : (opts.resume as string);
    const summary = await runRewardTrainAsync(
      { ...(opts.init ? { init: opts.init as string } : {}), ...(opts.resume ? { resume: opts.resume as string } : {}), data: opts.data as string, out, backend: opts.backend as string, ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}) },
      opts,
    );
    process.stdout.write(JSON.stringify(summary) + '\n');
  });
  const score = withBackendFlags(new Command('score'), { webgpu: true })
    .description('print reward scores: of each row\'s chosen and rejected replies (--data), or of one reply (--prompt, --response)')
    .requiredOption('--model <dir>', 'a reward model saved by `attn reward train`')
    .option('--data <file>', 'JSON Lines preference rows: prints {"row", "chosen", "rejected"} scores, then the accuracy')
    .option('--prompt <text>', 'a prompt, with --response')
    .option('--response <text>', 'the reply to score')
    .action(async (o: { model: string; data?: string; prompt?: string; response?: string; backend?: string; threads?: number }) => {
      if (!o.data === (o.prompt === undefined || o.response === undefined)) throw new UserError('reward score needs --data FILE or both --prompt and --response');
      await useBackendAsync(o);
      const { model, tokenizer } = loadRewardModel(o.model);
      moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
      model.eval();
      // Each batch's scores, read back (on a device: two numbers a pair).
      const scored = (seqs: Int32Array[]) => withDeviceScratch(() => noGrad(() => model.scores(seqs)), (t) => [t.storage]).read();
      if (!o.data) {
        const e = encodeConversation(chatTemplateOf(tokenizer), tokenizer, [{ role: 'user', content: o.prompt! }, { role: 'assistant', content: o.response! }], 1);
        process.stdout.write(JSON.stringify({ score: (await scored([e.ids]))[0] }) + '\n');
        return;
      }
      const pairs = encodePreferences(tokenizer, parsePreferenceRows(readTextFile(o.data), o.data), model.body.config.block_size, o.data);
      let right = 0;
      for (let i = 0; i < pairs.length; i += 16) {
        const part = pairs.slice(i, i + 16);
        const s = await scored([...part.map((p) => p.chosen.ids), ...part.map((p) => p.rejected.ids)]);
        part.forEach((p, j) => {
          const [chosen, rejected] = [s[j]!, s[part.length + j]!];
          if (chosen > rejected) right++;
          process.stdout.write(JSON.stringify({ row: p.row, chosen, rejected }) + '\n');
        });
      }
      process.stdout.write(JSON.stringify({ accuracy: right / pairs.length, rows: pairs.length }) + '\n');
    });
  for (const sub of [train, score]) reward.addCommand(sub.exitOverride().showHelpAfterError('(run with --help for usage)'));
  return reward;
}
