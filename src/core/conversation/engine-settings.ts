import type { GenerationOptions } from '../../model/generation/options.js';

export interface EngineSettings {
  /** Platform user ids (platform:id) that are admins whatever the platform says. */
  readonly admins: readonly string[];
  /** A best hit this certain (answer-policy.ts: its confidence times the square root of its lead) answers from the FAQ. */
  readonly confidentMatch: number;
  /** Below this nothing counts as relevant and the fallback answers. */
  readonly relevantMatch: number;
  readonly topK: number;
  readonly instructions: string;
  readonly fallback: string;
  readonly maxMessageChars: number;
  readonly rateLimit: { readonly perMinute: number; readonly burst: number };
  readonly memory: { readonly maxTurns: number; readonly maxTokens: number };
  readonly generation: GenerationOptions;
  /** Shows which path answered, with scores, under each reply. */
  readonly debug: boolean;
}
