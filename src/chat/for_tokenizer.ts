import { HFTokenizer } from '../tokenizers/hf/pipeline.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { ChatTemplate } from './template.js';

/**
 * The chat template that goes with a tokenizer: a Hugging Face tokenizer's
 * tokenizer_config.json template (ChatML if it has none); ChatML for others.
 */
export function chatTemplateOf(tokenizer: Tokenizer): ChatTemplate {
  return ChatTemplate.fromTokenizerConfig(tokenizer instanceof HFTokenizer ? tokenizer.config : {});
}

/** The ids of the template's end-of-turn tokens that the tokenizer has as single tokens. */
export function stopTokenIds(template: ChatTemplate, tokenizer: Tokenizer): number[] {
  const ids: number[] = [];
  for (const t of template.stopTokens) {
    const id = tokenizer instanceof HFTokenizer ? tokenizer.tokenToId(t) : tokenizer.specialTokens.get(t);
    if (id !== undefined && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/**
 * The ids that end a text (not a chat turn): GPT-2's <|endoftext|> and the
 * eos_token of a Hugging Face tokenizer_config.json (</s>, <|end_of_text|>),
 * where the tokenizer has them as tokens. Plain completions stop there.
 */
export function endOfTextIds(tokenizer: Tokenizer): number[] {
  const names = ['<|endoftext|>'];
  if (tokenizer instanceof HFTokenizer) {
    const eos = tokenizer.config.eos_token;
    const content = typeof eos === 'string' ? eos : eos && typeof eos === 'object' ? (eos as { content?: unknown }).content : undefined;
    if (typeof content === 'string') names.push(content);
  }
  const ids: number[] = [];
  for (const t of names) {
    const id = tokenizer instanceof HFTokenizer ? tokenizer.tokenToId(t) : tokenizer.specialTokens.get(t);
    if (id !== undefined && !ids.includes(id)) ids.push(id);
  }
  return ids;
}
