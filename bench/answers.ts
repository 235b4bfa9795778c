/**
 * bench:answers — how often the bot answers right, wrong, or abstains, on questions asked the
 * way members ask them. It runs the real engine (the policy, store and model of `tunebot start`)
 * on an FAQ it imports with /faq import, then asks, each as a new member:
 *   originals     every entry's question as the FAQ writes it;
 *   paraphrases   held-out rewordings (never ingested);
 *   unanswerable  questions the FAQ does not answer (abstaining is the right reply).
 * Stages: before fine-tuning, after /model finetune, and after the learning loop (the first
 * paraphrase of each entry linked from the inbox with /faq inbox link, then the others asked).
 * Prints a JSON line per stage and set, one per answer path with its latency, and the
 * retrieval confidence of every question for calibration (--dump FILE).
 *
 * --embedder use-lite: hybrid retrieval (BM25 + dense) on Universal Sentence Encoder lite
 * (use-lite-embedder.ts); without it, retrieval is as config says (BM25 alone by default).
 *
 *   npm run bench:answers -- [--data DIR] [--epochs N] [--preset tiny] [--no-finetune] [--embedder use-lite] [--dump FILE]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { certaintyOf } from '../src/core/conversation/answer-policy.js';
import { createApp } from '../src/core/app.js';
import { loadConfig } from '../src/core/config.js';
import type { AnswerOutcome } from '../src/core/conversation/engine.js';
import type { IncomingMessage } from '../src/core/conversation/message.js';
import { ModelRegistry } from '../src/core/serving/model-registry.js';
import { sameAnswer } from '../src/core/fine-tuning/regression-gate.js';
import { silentLogger } from '../src/log.js';
import { initModel } from '../src/model/files/model-dir.js';
import type { PresetName } from '../src/model/config.js';
import { UseLiteEmbedder } from './use-lite-embedder.js';

const { values: flags } = parseArgs({
  options: {
    data: { type: 'string', default: 'bench/answers' },
    epochs: { type: 'string' },
    preset: { type: 'string', default: 'tiny' },
    'no-finetune': { type: 'boolean', default: false },
    dump: { type: 'string' },
    embedder: { type: 'string' },
  },
});
if (flags.embedder !== undefined && flags.embedder !== 'use-lite') throw new Error(`--embedder takes use-lite, got ${flags.embedder}`);

interface FaqItem {
  readonly id: string;
  readonly question: string;
  readonly answer: string;
}

interface Question {
  readonly text: string;
  /** The entry that answers it; null for the unanswerable. */
  readonly expected: string | null;
}

type Verdict = 'correct' | 'wrong' | 'abstained';

interface Asked {
  readonly question: Question;
  readonly outcome: AnswerOutcome;
  readonly verdict: Verdict;
}

const dataDir = resolve(flags.data);
const faq: FaqItem[] = JSON.parse(await readFile(join(dataDir, 'faq.json'), 'utf8'));
const paraphrases: Record<string, string[]> = JSON.parse(await readFile(join(dataDir, 'paraphrases.json'), 'utf8'));
const unanswerable: string[] = JSON.parse(await readFile(join(dataDir, 'unanswerable.json'), 'utf8'));
const answerOf = new Map(faq.map((item) => [item.id, item.answer]));

const scratch = await mkdtemp(join(tmpdir(), 'tunebot-bench-answers-'));
const env: Record<string, string> = {
  TUNEBOT_MODEL_DIR: join(scratch, 'models'),
  TUNEBOT_STORAGE_URL: `sqlite://${join(scratch, 'tunebot.db')}`,
  LOG_LEVEL: 'silent',
  ...(flags.epochs ? { TUNEBOT_FINE_TUNE_EPOCHS: flags.epochs } : {}),
};
const config = loadConfig({ ...process.env, ...env });
const registry = new ModelRegistry(config.model.dir);
await initModel(join(scratch, 'base'), flags.preset as PresetName, 0);
await registry.publish(join(scratch, 'base'), 'v1');
await registry.use('v1');
const app = await createApp(config, silentLogger, flags.embedder ? { embedder: await UseLiteEmbedder.load() } : {});
const outcomes = new WeakMap<IncomingMessage, AnswerOutcome>();
app.engine.onAnswer((outcome, message) => outcomes.set(message, outcome));
let members = 0;

try {
  const admin = message('admin', '/faq import replace', true, { name: 'faq.json', bytes: await readFile(join(dataDir, 'faq.json')) });
  report({ event: 'import', retrieval: app.retriever ? `hybrid (${flags.embedder ?? config.retrieval.embeddingModel})` : 'bm25', reply: await replyText(admin) });

  const sets = {
    originals: faq.map((item) => ({ text: item.question, expected: item.id })),
    paraphrases: faq.flatMap((item) => (paraphrases[item.id] ?? []).map((text) => ({ text, expected: item.id }))),
    unanswerable: unanswerable.map((text) => ({ text, expected: null })),
  } satisfies Record<string, Question[]>;

  const dump: object[] = [];
  await askAll('before-finetune', sets, dump);
  if (!flags['no-finetune']) {
    const started = performance.now();
    const reply = await replyText(message('admin', '/model finetune', true));
    report({ event: 'finetune', seconds: round((performance.now() - started) / 1000), reply: reply.split('\n').slice(-4).join(' ') });
    await askAll('after-finetune', sets, dump);
  }
  await learningLoop(dump);
  // This process's peak memory (the fine-tune runs in a process of its own: bench:train measures that).
  report({ event: 'memory', peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024), rssNowMb: Math.round(process.memoryUsage().rss / 2 ** 20) });
  if (flags.dump) await writeFile(flags.dump, dump.map((line) => JSON.stringify(line)).join('\n') + '\n');
} finally {
  await app.close();
  await rm(scratch, { recursive: true, force: true });
}

async function askAll(stage: string, sets: Record<string, Question[]>, dump: object[]): Promise<void> {
  for (const [set, questions] of Object.entries(sets)) {
    const asked: Asked[] = [];
    for (const question of questions) asked.push(await ask(question, stage, set, dump));
    summarize(stage, set, asked);
  }
}

/**
 * The learning loop: each entry's first paraphrase is asked; where the bot did not answer it
 * confidently it is in the inbox, and the admin links it to the entry. Then the entries'
 * other paraphrases are asked.
 */
async function learningLoop(dump: object[]): Promise<void> {
  const firsts = faq.flatMap((item) => (paraphrases[item.id]?.length ? [{ text: paraphrases[item.id][0], expected: item.id }] : []));
  for (const question of firsts) await ask(question, 'loop-ask', 'first-paraphrases', dump);
  let linked = 0;
  const inbox = await app.services.inboxFor(message('admin', '', true)).items();
  // Highest position first, so that taking an item does not move the ones still to link.
  for (let position = inbox.length; position >= 1; position--) {
    const item = firsts.find((question) => question.text.trim() === inbox[position - 1].question);
    if (!item) continue;
    const reply = await replyText(message('admin', `/faq inbox link ${position} ${item.expected}`, true));
    if (/^Linked/u.test(reply)) linked++;
    else report({ event: 'link-failed', reply });
  }
  report({ event: 'loop-linked', linked, firsts: firsts.length });
  const others = faq.flatMap((item) => (paraphrases[item.id] ?? []).slice(1).map((text) => ({ text, expected: item.id })));
  const asked: Asked[] = [];
  for (const question of others) asked.push(await ask(question, 'after-loop', 'other-paraphrases', dump));
  summarize('after-loop', 'other-paraphrases', asked);
}

async function ask(question: Question, stage: string, set: string, dump: object[]): Promise<Asked> {
  const asking = message(`member-${++members}`, question.text, false);
  const hits = await app.services.faqFor(asking).search(question.text, 3);
  await replyText(asking);
  const outcome = outcomes.get(asking);
  if (!outcome) throw new Error(`"${question.text}" was not answered as a question (a command or a refusal?)`);
  const verdict = judge(question, outcome);
  dump.push({
    stage,
    set,
    text: question.text,
    expected: question.expected,
    path: outcome.path,
    answered: outcome.entryId,
    verdict,
    certainty: round(certaintyOf(hits)),
    hits: hits.map((hit) => ({ id: hit.entry.id, confidence: round(hit.confidence), score: round(hit.score) })),
  });
  return { question, outcome, verdict };
}

function judge(question: Question, outcome: AnswerOutcome): Verdict {
  if (outcome.path === 'fallback' || outcome.reply === config.engine.fallback) return 'abstained';
  if (question.expected === null) return 'wrong';
  return sameAnswer(outcome.reply, answerOf.get(question.expected) ?? '') ? 'correct' : 'wrong';
}

function summarize(stage: string, set: string, asked: readonly Asked[]): void {
  const count = (verdict: Verdict, path?: string) => asked.filter((a) => a.verdict === verdict && (!path || a.outcome.path === path)).length;
  const byPath = Object.fromEntries(
    ['faq', 'model', 'fallback'].map((path) => [path, { correct: count('correct', path), wrong: count('wrong', path), abstained: count('abstained', path) }]),
  );
  const total = asked.length;
  report({
    stage,
    set,
    total,
    correct: count('correct'),
    wrong: count('wrong'),
    abstained: count('abstained'),
    correctRate: round(count('correct') / total),
    wrongRate: round(count('wrong') / total),
    byPath,
  });
  for (const path of ['faq', 'model', 'fallback']) {
    const seconds = asked.filter((a) => a.outcome.path === path).map((a) => a.outcome.seconds).sort((a, b) => a - b);
    if (seconds.length === 0) continue;
    const mean = seconds.reduce((sum, value) => sum + value, 0) / seconds.length;
    report({ stage, set, path, answers: seconds.length, meanMs: round(mean * 1000), p50Ms: round(quantile(seconds, 0.5) * 1000), p95Ms: round(quantile(seconds, 0.95) * 1000) });
  }
}

function message(user: string, text: string, admin: boolean, file?: { name: string; bytes: Uint8Array }): IncomingMessage {
  return {
    platform: 'local',
    scope: { workspace: 'bench', channel: 'bench' },
    user: { id: user, displayName: user },
    text,
    attachments: file ? [{ name: file.name, size: file.bytes.length, bytes: async () => file.bytes }] : [],
    platformAdmin: admin,
  };
}

async function replyText(incoming: IncomingMessage): Promise<string> {
  let text = '';
  for await (const part of app.engine.handle(incoming)) if (typeof part === 'string') text += part;
  return text;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function report(line: object): void {
  console.log(JSON.stringify({ bench: 'answers', data: flags.data, ...line }));
}
