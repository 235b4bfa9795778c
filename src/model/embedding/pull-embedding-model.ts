import { rename, rm } from 'node:fs/promises';
import { ModelError } from '../errors.js';
import { type PullProgress, pullFromHub } from '../hub/hub.js';
import { type Pooling, sentenceEmbeddingFiles } from './embedding-folder.js';
import { SentenceEmbedder } from './sentence-embedder.js';

export interface EmbeddingPullOptions {
  /** Hub repo id, e.g. "sentence-transformers/all-MiniLM-L6-v2". */
  readonly repo: string;
  readonly revision?: string;
  /** A folder that does not exist yet. */
  readonly outDir: string;
  /** Default process.env.HF_ENDPOINT ?? 'https://huggingface.co'. */
  readonly endpoint?: string;
  readonly onProgress?: (progress: PullProgress) => void;
  readonly signal?: AbortSignal;
}

export interface EmbeddingPullResult {
  readonly commit: string;
  readonly files: readonly string[];
  readonly dimension: number;
  readonly pooling: Pooling;
}

/**
 * Downloads a sentence-embedding repo's folder files (embedding-folder.ts) into outDir.
 * They go to outDir.download first, where an interrupted pull resumes, and move into outDir
 * only once the embedder has loaded them and embedded a sentence, so outDir is always a
 * model that runs.
 */
export async function pullEmbeddingModel(options: EmbeddingPullOptions): Promise<EmbeddingPullResult> {
  const downloadDir = `${options.outDir}.download`;
  const pulled = await pullFromHub({
    repo: options.repo,
    revision: options.revision,
    outDir: downloadDir,
    endpoint: options.endpoint,
    files: sentenceEmbeddingFiles,
    onProgress: options.onProgress,
    signal: options.signal,
  });
  let embedder: SentenceEmbedder;
  try {
    embedder = await SentenceEmbedder.load(downloadDir);
  } catch (error) {
    // Pulling the same commit again would give the same files: nothing is worth keeping.
    await rm(downloadDir, { recursive: true, force: true });
    const reason = error instanceof Error ? error.message : String(error);
    throw new ModelError('MODEL_CORRUPT', `${options.repo} at ${pulled.commit.slice(0, 12)} is not a sentence-embedding model tunebot can run (${reason}); the download was removed`, {
      cause: error,
    });
  }
  const { dimension, pooling } = embedder;
  await embedder.close();
  await rename(downloadDir, options.outDir);
  return { commit: pulled.commit, files: pulled.files, dimension, pooling };
}
