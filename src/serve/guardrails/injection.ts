/**
 * A prompt-injection check: phrases that try to override the instructions a
 * model was given, each with a weight (how sure it is on its own). The score
 * combines them as independent evidence, 1 − Π(1 − wᵢ), so one strong phrase
 * or several weak ones reach the threshold, and a lone weak cue ("developer
 * mode" in a question about phones) does not.
 */

export interface InjectionPattern {
  name: string;
  pattern: RegExp;
  weight: number;
}

export const DEFAULT_INJECTION_PATTERNS: readonly InjectionPattern[] = [
  { name: 'ignore_previous', pattern: /\b(ignore|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)*(previous|prior|above|earlier|preceding|system)\s+(instructions?|prompts?|rules|directions|messages)/i, weight: 0.9 },
  { name: 'disregard', pattern: /\bdisregard\s+(all\s+|any\s+|the\s+|your\s+)*(previous|prior|above|earlier|system|safety)\b/i, weight: 0.85 },
  { name: 'reveal_prompt', pattern: /\b(reveal|print|show|repeat|output|leak)\s+(me\s+)?(your|the)\s+(full\s+|exact\s+|hidden\s+|original\s+)*(system\s+prompt|initial\s+prompt|hidden\s+instructions|instructions\s+above)/i, weight: 0.8 },
  { name: 'new_persona', pattern: /\b(you\s+are\s+now|from\s+now\s+on\s+you\s+are|act\s+as|pretend\s+(to\s+be|you\s+are))\s+(a\s+|an\s+)?(DAN|unrestricted|unfiltered|jailbroken|evil|uncensored)/i, weight: 0.8 },
  { name: 'no_rules', pattern: /\b(without|no)\s+(any\s+)?(restrictions|filters|guidelines|safety\s+rules)\b/i, weight: 0.4 },
  { name: 'role_tokens', pattern: /<\|im_start\|>|<\|system\|>|\[INST\]|<<SYS>>|^\s*system\s*:/im, weight: 0.6 },
  { name: 'developer_mode', pattern: /\b(developer|god|debug)\s+mode\s+(enabled|on|activated)\b/i, weight: 0.5 },
  { name: 'jailbreak', pattern: /\bjailbreak(ing|en)?\b/i, weight: 0.35 },
  { name: 'do_not_follow', pattern: /\bdo\s+not\s+follow\s+(your|the|any)\s+(rules|guidelines|instructions|policies)\b/i, weight: 0.7 },
];

export interface InjectionResult {
  score: number;
  /** Names of the patterns that matched. */
  matched: string[];
}

export function injectionScore(text: string, patterns: readonly InjectionPattern[] = DEFAULT_INJECTION_PATTERNS): InjectionResult {
  let clean = 1;
  const matched: string[] = [];
  for (const p of patterns) {
    if (!p.pattern.test(text)) continue;
    matched.push(p.name);
    clean *= 1 - p.weight;
  }
  return { score: 1 - clean, matched };
}
