import { Command } from 'commander';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { ChatSession } from '../generate/chat_session.js';
import { loadModel } from '../io/model_dir.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { moveToBackend } from '../nn/placement.js';
import { int, num, seed } from './flags.js';

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

/** A reply as one line of a pipe: a newline written as `\n` (a carriage return as `\r`), a backslash as `\\`. */
export function escapeLine(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

/**
 * Fail at startup, with one line, when the tokenizer cannot encode the
 * --system message or the template's own markup (a char tokenizer trained
 * on plain text has no "<" for ChatML's <|im_start|>).
 */
function checkEncodable(o: ChatCliOptions, session: ChatSession, tokenizer: Tokenizer): void {
  if (o.system !== undefined) {
    try {
      tokenizer.encode(o.system, { allowedSpecial: 'all' });
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`--system: ${e.message}`);
      throw e;
    }
  }
  try {
    tokenizer.encode(session.template.render([...session.messages, { role: 'user', content: '' }], { addGenerationPrompt: true }), { allowedSpecial: 'all' });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    const which = session.template.isDefault ? "ChatML's <|im_start|> … <|im_end|> markup" : 'its markup';
    throw new UserError(`${o.model}'s tokenizer cannot encode its chat template (${which}: ${e.message}); attn chat needs a model with a sub-word tokenizer, or a chat template its tokenizer can encode`);
  }
}

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
  await useBackendAsync(o);
  const { model, tokenizer } = loadModel(o.model);
  moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
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
  // Render and encode the conversation's start now, so that a template that cannot work fails before the first question.
  session.template.render([...session.messages, { role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
  checkEncodable(o, session, tokenizer);
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
        let wrote = false;
        try {
          for await (const piece of replying) {
            io.write(io.terminal ? piece : escapeLine(piece));
            wrote = true;
            if (interrupted) break; // leaving the loop ends the generator: the reply is not kept
          }
          io.write(interrupted ? ' (interrupted)\n' : '\n');
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          // A message that cannot be sent (longer than the context, a character the tokenizer lacks) is refused; the chat goes on.
          io.note(`error: ${e.message}\n`);
          if (wrote || !io.terminal) io.write('\n'); // in a pipe an empty reply, so that replies stay one per message
        } finally {
          replying = null;
        }
      }
      rl.prompt();
    }
  } finally {
    rl.close();
  }
}

export function chatCommand(): Command {
  return withBackendFlags(new Command('chat'), { webgpu: true })
    .description('talk with a model in the terminal: its own chat template (ChatML when it has none), replies streamed as they are generated, the conversation kept until /reset. Reads lines from a pipe too (one message per line, one reply per line out, its newlines written as \\n and backslashes as \\\\)')
    .requiredOption('--model <dir>', 'model directory: a Hugging Face Llama, Qwen2 or Mistral chat model, or any attn model with a tokenizer')
    .option('--system <text>', 'system message that starts the conversation')
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', num, 0.7)
    .option('--top-p <p>', 'nucleus sampling: smallest set of tokens with total probability ≥ p', num, 0.9)
    .option('--top-k <k>', 'sample only among the k most likely tokens', int)
    .option('--max-tokens <n>', 'most tokens in one reply', int, 256)
    .option('--seed <n>', 'random seed (reply n uses seed + n)', seed, 1337)
    .addHelpText(
      'after',
      `\nIn the chat: ${HELP}. When the conversation outgrows the model's context, the oldest turns are dropped with a warning; ` +
        'a message that cannot be sent (longer than the context) is refused with one line on stderr and the chat goes on (in a pipe its reply line is empty). ' +
        'In a pipe each reply is one line: a newline in it is written as \\n, a backslash as \\\\.',
    )
    .action((o: ChatCliOptions) =>
      runChat(o, {
        input: process.stdin,
        write: (s) => process.stdout.write(s),
        note: (s) => process.stderr.write(s),
        terminal: process.stdin.isTTY && process.stdout.isTTY ? { output: process.stdout } : undefined,
      }),
    );
}
