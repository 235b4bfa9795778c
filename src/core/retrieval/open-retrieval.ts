import { existsSync } from 'node:fs';
import type { Logger } from '../../log.js';
import { EXAMPLE_EMBEDDING_REPO } from '../../model/embedding/embedding-folder.js';
import { SentenceEmbedder } from '../../model/embedding/sentence-embedder.js';
import type { TunebotConfig } from '../config.js';
import { HybridRetriever } from './hybrid-retriever.js';

/**
 * The retrieval mode config asks for, logged: hybrid (BM25 + dense) when
 * retrieval.embeddingModel names a folder that exists, else BM25 alone (null). A folder that
 * exists but does not load fails the start with the embedder's coded error: the operator asked
 * for hybrid retrieval, and a bot that quietly ran without it would hide the fault.
 */
export async function openRetrieval(config: Pick<TunebotConfig, 'retrieval' | 'model'>, logger: Logger): Promise<HybridRetriever | null> {
  const dir = config.retrieval.embeddingModel;
  if (dir === null) {
    logger.info({ retrieval: 'lexical' }, 'retrieval: BM25 (no retrieval.embeddingModel)');
    return null;
  }
  if (!existsSync(dir)) {
    logger.warn(
      { retrieval: 'lexical', embeddingModel: dir },
      `retrieval: BM25 alone, retrieval.embeddingModel names no folder; pull one with \`tunebot model pull ${EXAMPLE_EMBEDDING_REPO} --embedding\``,
    );
    return null;
  }
  const embedder = await SentenceEmbedder.load(dir, { intraOpThreads: config.model.intraOpThreads });
  logger.info({ retrieval: 'hybrid', embeddingModel: dir, dimension: embedder.dimension, pooling: embedder.pooling }, 'retrieval: BM25 + dense, fused');
  return new HybridRetriever(embedder, { logger });
}
