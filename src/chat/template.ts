import { Template } from '@huggingface/jinja';
import { UserError } from '../util/errors.js';
import type { ChatMessage } from './messages.js';

type Json = Record<string, unknown>;

/**
 * The chat format used when a model ships none: ChatML (Qwen's, and many
 * fine-tunes'), each message `<|im_start|>role\ncontent<|im_end|>\n`, and
 * `<|im_start|>assistant\n` to ask for the reply. The model must know these
 * tokens as added special tokens for it to mean anything to it.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** Strings that end an assistant's turn in today's chat formats (Qwen/ChatML, Llama 3, Gemma, Phi, Llama 2). */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<end_of_turn>', '<|end|>', '</s>', '<|endoftext|>', '<|end_of_text|>'];

export interface RenderOptions {
  /** End with the start of an assistant turn, so that the model writes the reply. */
  addGenerationPrompt?: boolean;
  /** Tool (function) definitions, passed to the template as `tools`. */
  tools?: unknown[];
}

/**
 * A model's chat template: tokenizer_config.json's `chat_template` (a Jinja
 * string, or a list of named ones of which "default" is used), rendered with
 * @huggingface/jinja as transformers renders it — with the messages,
 * add_generation_prompt, tools, and the special tokens the config names
 * (bos_token, eos_token, …) as variables.
 */
export class ChatTemplate {
  readonly source: string;
  /** True when the model had no template and ChatML is used. */
  readonly isDefault: boolean;
  /** The strings that end the assistant's turn: eos_token and the end-of-turn tokens the template writes. */
  readonly stopTokens: readonly string[];
  private readonly template: Template;
  private readonly variables: Json;

  constructor(source: string | undefined, variables: Json, where = 'chat template') {
    this.isDefault = source === undefined;
    this.source = source ?? DEFAULT_CHAT_TEMPLATE;
    this.variables = variables;
    try {
      this.template = new Template(this.source);
    } catch (e) {
      throw new UserError(`${where} does not parse: ${(e as Error).message}`);
    }
    const eos = typeof variables.eos_token === 'string' ? [variables.eos_token] : [];
    this.stopTokens = [...new Set([...eos, ...END_OF_TURN.filter((t) => this.source.includes(t))])];
  }

  /** The template of a tokenizer_config.json, or ChatML when it has none. */
  static fromTokenizerConfig(config: Json, where = 'tokenizer_config.json'): ChatTemplate {
    return new ChatTemplate(templateSource(config.chat_template, where), specialTokenVariables(config), `${where}: chat_template`);
  }

  /** The prompt text; a template that fails (raise_exception, a bad field) is a UserError with its own message. */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    try {
      return this.template.render({
        ...this.variables,
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? false,
        ...(options.tools !== undefined ? { tools: options.tools } : {}),
      });
    } catch (e) {
      throw new UserError(`the chat template failed to render: ${(e as Error).message}`);
    }
  }
}

function templateSource(raw: unknown, where: string): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    const named = raw.find((t) => (t as Json)?.name === 'default');
    if (named && typeof (named as Json).template === 'string') return (named as Json).template as string;
    throw new UserError(`${where}: chat_template is a list without a "default" template (it has: ${raw.map((t) => JSON.stringify((t as Json)?.name)).join(', ')})`);
  }
  throw new UserError(`${where}: chat_template must be a string or a list of {"name", "template"}`);
}

/**
 * bos_token, eos_token, unk_token, pad_token, … and additional_special_tokens,
 * as strings: the config writes a token as "<s>" or as {"content": "<s>", …}.
 */
function specialTokenVariables(config: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(config)) {
    if (!key.endsWith('_token') && key !== 'additional_special_tokens') continue;
    if (typeof value === 'string') out[key] = value;
    else if (value && typeof value === 'object' && typeof (value as Json).content === 'string') out[key] = (value as Json).content;
    else if (Array.isArray(value)) out[key] = value.map((v) => (typeof v === 'string' ? v : (v as Json)?.content));
  }
  return out;
}
