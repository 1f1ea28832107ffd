import { Command } from 'commander';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { ChatSession } from '../generate/chat_session.js';
import { loadModel } from '../io/model_dir.js';
import { UserError } from '../util/errors.js';
import { useBackend, withBackendFlags } from './backend_flags.js';
import { int, num } from './flags.js';

export interface ChatCliOptions {
  model: string;
  system?: string;
  temperature: number;
  topP?: number;
  topK?: number;
  maxTokens: number;
  seed: number;
  backend?: string;
  threads?: number;
}

/** Where the chat reads and writes: the terminal, or a pipe (then no prompt is shown). */
export interface ChatIO {
  input: Readable;
  /** Replies (stdout). */
  write: (s: string) => void;
  /** Notes and warnings (stderr). */
  note: (s: string) => void;
  /** A terminal: show a prompt, and let Ctrl-C stop a reply. */
  terminal?: { output: Writable } | undefined;
}

const HELP = '/reset clears the conversation, /exit (or Ctrl-D) quits';

function checkFlags(o: ChatCliOptions): void {
  if (!(o.temperature >= 0)) throw new UserError('--temperature must be ≥ 0');
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new UserError('--top-p must be in (0, 1]');
  if (o.topK !== undefined && o.topK < 1) throw new UserError('--top-k must be ≥ 1');
  if (o.maxTokens < 1) throw new UserError('--max-tokens must be ≥ 1');
}

/**
 * `attn chat`: load a model and hold a conversation on `io`. Each line read
 * is a user message (or a command); the reply streams as it is generated,
 * then a newline. Returns when the input ends or /exit is read.
 */
export async function runChat(o: ChatCliOptions, io: ChatIO): Promise<void> {
  checkFlags(o);
  useBackend(o);
  const { model, tokenizer } = loadModel(o.model);
  if (!tokenizer) throw new UserError(`${o.model} has no tokenizer (tokenizer.json, or vocab.json + merges.txt): attn chat needs one to turn text into tokens`);
  const session = new ChatSession(model, tokenizer, {
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    seed: o.seed,
    onWarning: (m) => io.note(`warning: ${m}\n`),
    ...(o.system !== undefined ? { system: o.system } : {}),
    ...(o.topP !== undefined ? { topP: o.topP } : {}),
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
  });
  if (session.template.isDefault) io.note(`note: ${o.model} has no chat template (tokenizer_config.json's chat_template); using ChatML\n`);
  // Render the conversation's start now, so that a template that cannot work fails before the first question.
  session.template.render([...session.messages, { role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
  if (io.terminal) io.note(`attn chat with ${o.model} (context ${model.config.block_size} tokens): ${HELP}\n`);

  const rl = createInterface({ input: io.input, ...(io.terminal ? { output: io.terminal.output, terminal: true, prompt: '> ' } : { terminal: false }) });
  let replying: AsyncGenerator<string> | null = null;
  let interrupted = false;
  rl.on('SIGINT', () => {
    if (replying) interrupted = true; // stop this reply, keep chatting
    else rl.close();
  });
  try {
    rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === '/quit') break;
      if (line === '/reset') {
        session.reset();
        io.note('(conversation cleared)\n');
      } else if (line === '/help') {
        io.note(`${HELP}\n`);
      } else if (line !== '') {
        replying = session.send(raw);
        interrupted = false;
        for await (const piece of replying) {
          io.write(piece);
          if (interrupted) break; // leaving the loop ends the generator: the reply is not kept
        }
        replying = null;
        io.write(interrupted ? ' (interrupted)\n' : '\n');
      }
      rl.prompt();
    }
  } finally {
    rl.close();
  }
}

export function chatCommand(): Command {
  return withBackendFlags(new Command('chat'))
    .description('talk with a model in the terminal: its own chat template (ChatML when it has none), replies streamed as they are generated, the conversation kept until /reset. Reads lines from a pipe too (one message per line, one reply per line out)')
    .requiredOption('--model <dir>', 'model directory: a Hugging Face Llama, Qwen2 or Mistral chat model, or any attn model with a tokenizer')
    .option('--system <text>', 'system message that starts the conversation')
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', num, 0.7)
    .option('--top-p <p>', 'nucleus sampling: smallest set of tokens with total probability ≥ p', num, 0.9)
    .option('--top-k <k>', 'sample only among the k most likely tokens', int)
    .option('--max-tokens <n>', 'most tokens in one reply', int, 256)
    .option('--seed <n>', 'random seed (reply n uses seed + n)', int, 1337)
    .addHelpText('after', `\nIn the chat: ${HELP}. When the conversation outgrows the model's context, the oldest turns are dropped with a warning.`)
    .action((o: ChatCliOptions) =>
      runChat(o, {
        input: process.stdin,
        write: (s) => process.stdout.write(s),
        note: (s) => process.stderr.write(s),
        terminal: process.stdin.isTTY && process.stdout.isTTY ? { output: process.stdout } : undefined,
      }),
    );
}
