/**
 * The one prompt format: the engine asks the model in it, and fine-tuning data is built in
 * it, so the model learns to answer exactly the way it will be asked.
 *
 *   {instructions}
 *   Q: {retrieved question 1}
 *   A: {its answer}
 *   ...
 *   User: {an earlier turn}
 *   Bot: {the reply}
 *   User: {the message}
 *   Bot:
 *
 * The model continues with " {answer}" and then <|endoftext|>; "\nUser:" also ends a reply.
 */
export interface FaqPassage {
  readonly question: string;
  readonly answer: string;
}

export interface Turn {
  readonly role: 'user' | 'assistant';
  readonly text: string;
}

export interface PromptParts {
  readonly instructions: string;
  /** Retrieved entries, best first. */
  readonly faq: readonly FaqPassage[];
  /** Earlier turns, oldest first. */
  readonly history: readonly Turn[];
  readonly message: string;
}

export const REPLY_STOPS = ['\nUser:', '\nQ:'] as const;

export function formatPrompt(parts: PromptParts): string {
  const lines: string[] = [];
  if (parts.instructions) lines.push(oneLine(parts.instructions));
  for (const entry of parts.faq) lines.push(`Q: ${oneLine(entry.question)}`, `A: ${oneLine(entry.answer)}`);
  for (const turn of parts.history) lines.push(`${turn.role === 'user' ? 'User' : 'Bot'}: ${oneLine(turn.text)}`);
  lines.push(`User: ${oneLine(parts.message)}`, 'Bot:');
  return lines.join('\n');
}

/** The completion the model is trained to give: a space, the answer on one line. */
export function formatCompletion(answer: string): string {
  return ` ${oneLine(answer)}`;
}

/**
 * Cuts the parts until the prompt fits `budget` tokens: first the oldest turns, then the
 * lowest-ranked FAQ entries, and last the start of the message itself.
 */
export function fitPromptParts(parts: PromptParts, budget: number, countTokens: (text: string) => number): PromptParts {
  let fitted: PromptParts = parts;
  const fits = () => countTokens(formatPrompt(fitted)) <= budget;
  while (!fits() && fitted.history.length > 0) fitted = { ...fitted, history: fitted.history.slice(1) };
  while (!fits() && fitted.faq.length > 0) fitted = { ...fitted, faq: fitted.faq.slice(0, -1) };
  while (!fits() && fitted.message.length > 1) fitted = { ...fitted, message: fitted.message.slice(Math.ceil(fitted.message.length / 8)) };
  return fitted;
}

/** Newlines would let a user's text pose as another speaker or an FAQ entry. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
