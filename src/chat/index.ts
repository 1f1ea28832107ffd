export { ChatTemplate, DEFAULT_CHAT_TEMPLATE, type RenderOptions } from './template.js';
export { parseChatMessages, type ChatMessage } from './messages.js';
export { chatTemplateOf, endOfTextIds, stopTokenIds } from './for_tokenizer.js';
