/**
 * npm run bench:embedding — what hybrid retrieval costs per question, as JSON lines: a
 * SentenceEmbedder embedding one chat question at a time (the query side of every search), a
 * whole FAQ's questions in one call (the index side, once per FAQ version), and
 * HybridRetriever.search with its index built (query embedding + cosines + fusion).
 *
 *   BENCH_EMBEDDING_MODELS=tiny,minilm   tiny: the tests' BERT (hidden 32, 2 layers);
 *                                        minilm: all-MiniLM-L6-v2's shape (hidden 384, 6 layers,
 *                                        12 heads, vocabulary 30522) with random weights, which
 *                                        run as fast as the real ones
 *   BENCH_THREADS=1                      intraOpThreads (0: ONNX Runtime's choice)
 *
 * The questions are bench/answers' 225 chat-style paraphrases and its 45 FAQ questions. The
 * tests' WordPiece vocabulary is small, so words outside it are spelled letter by letter: the
 * token counts reported are longer than MiniLM's own tokenizer would make them, and the
 * timings are on the slow side.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer } from '@huggingface/transformers';
import { HybridRetriever } from '../src/core/retrieval/hybrid-retriever.js';
import { silentLogger } from '../src/log.js';
import { SentenceEmbedder } from '../src/model/embedding/sentence-embedder.js';
import { MINILM_L6_SHAPE, TINY_BERT_SHAPE } from '../test/helpers/tiny-bert/bert-weights.js';
import { writeTinyBert } from '../test/helpers/tiny-bert/tiny-bert-folder.js';

const SHAPES = { tiny: TINY_BERT_SHAPE, minilm: MINILM_L6_SHAPE } as const;
const MODELS = (process.env.BENCH_EMBEDDING_MODELS ?? 'tiny,minilm').split(',') as (keyof typeof SHAPES)[];
const THREADS = Number(process.env.BENCH_THREADS ?? 1);

function report(figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'embedding', ...figures }));
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const round = (ms: number) => Math.round(ms * 100) / 100;

async function timeEach(texts: readonly string[], run: (text: string) => Promise<unknown>): Promise<{ median_ms: number; p90_ms: number }> {
  const times: number[] = [];
  for (const text of texts) {
    const started = performance.now();
    await run(text);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { median_ms: round(percentile(times, 0.5)), p90_ms: round(percentile(times, 0.9)) };
}

const answers = new URL('./answers/', import.meta.url);
const faq = JSON.parse(await readFile(new URL('faq.json', answers), 'utf8')) as { id: string; question: string }[];
const paraphrases = Object.values(JSON.parse(await readFile(new URL('paraphrases.json', answers), 'utf8')) as Record<string, string[]>).flat();
const entries = faq.map((entry) => ({ id: entry.id, question: entry.question, alternates: [] }));

const root = await mkdtemp(join(tmpdir(), 'tunebot-bench-embedding-'));
try {
  for (const name of MODELS) {
    const dir = (await writeTinyBert(join(root, name), { shape: SHAPES[name] })).dir;
    const loadStarted = performance.now();
    const embedder = await SentenceEmbedder.load(dir, { intraOpThreads: THREADS });
    const loadMs = performance.now() - loadStarted;
    const tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    const tokens = paraphrases.map((text) => tokenizer(text).input_ids.dims[1]);
    try {
      // Warm-up: the first runs allocate.
      await embedder.embed(paraphrases.slice(0, 8));
      const perQuestion = await timeEach(paraphrases, (text) => embedder.embed([text]));
      const indexStarted = performance.now();
      await embedder.embed(faq.map((entry) => entry.question));
      const indexMs = performance.now() - indexStarted;
      const retriever = new HybridRetriever(embedder, { logger: silentLogger });
      await retriever.search('warm-up', entries, [], 3);
      const search = await timeEach(paraphrases, (text) => retriever.search(text, entries, [], 3));
      report({
        model: name,
        hidden: embedder.dimension,
        threads: THREADS,
        load_ms: Math.round(loadMs),
        questions: paraphrases.length,
        mean_tokens: round(tokens.reduce((sum, n) => sum + n, 0) / tokens.length),
        embed_one_question: perQuestion,
        index_faq_questions: { entries: faq.length, ms: round(indexMs) },
        hybrid_search: search,
      });
    } finally {
      await embedder.close();
    }
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
