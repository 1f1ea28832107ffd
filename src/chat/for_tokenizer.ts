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
