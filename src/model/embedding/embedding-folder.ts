import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { type FileSelection, ONNX_EXTERNAL_DATA_FILE, ONNX_FILE } from '../hub/hub.js';

/**
 * A sentence-embedding model folder: a sentence-transformers repo in the Hugging Face layout
 * with its ONNX export, as sentence-transformers/all-MiniLM-L6-v2 has it. Transformers.js reads
 * config.json, the tokenizer files and onnx/model.onnx; 1_Pooling/config.json says how token
 * vectors become one sentence vector (mean when absent). The PyTorch weights are not needed.
 */
const REQUIRED_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', ONNX_FILE];
const POOLING_FILE = '1_Pooling/config.json';
const OPTIONAL_FILES = ['special_tokens_map.json', POOLING_FILE];

export const EXAMPLE_EMBEDDING_REPO = 'sentence-transformers/all-MiniLM-L6-v2';

/** How a sentence vector is made from the last hidden state. */
export type Pooling = 'mean' | 'cls';

/** The hub files of a sentence-embedding model folder, small ones first. */
export const sentenceEmbeddingFiles: FileSelection = (available, where) => {
  const missing = REQUIRED_FILES.filter((name) => !available.has(name));
  if (missing.includes(ONNX_FILE)) {
    throw new ModelError(
      'HUB_ERROR',
      `${where} has no ${ONNX_FILE}; sentence embeddings run as an ONNX export, so pick a repo that has one (e.g. ${EXAMPLE_EMBEDDING_REPO})`,
    );
  }
  if (missing.length > 0) throw new ModelError('HUB_ERROR', `${where} lacks ${missing.join(', ')}, which a sentence-embedding model folder needs`);
  if (available.has(ONNX_EXTERNAL_DATA_FILE)) {
    throw new ModelError('HUB_ERROR', `${where} keeps its ONNX weights in ${ONNX_EXTERNAL_DATA_FILE} (an export over 2 GB), which the embedder does not load; pick a smaller model`);
  }
  const small = REQUIRED_FILES.filter((name) => name !== ONNX_FILE);
  return [...small, ...OPTIONAL_FILES.filter((name) => available.has(name)), ONNX_FILE];
};

/** Throws MODEL_NOT_FOUND when `dir` is no folder, MODEL_CORRUPT naming the files it lacks. */
export async function checkEmbeddingFolder(dir: string): Promise<void> {
  const isFolder = await stat(dir).then(
    (found) => found.isDirectory(),
    () => false,
  );
  if (!isFolder) {
    throw new ModelError(
      'MODEL_NOT_FOUND',
      `no sentence-embedding model at ${dir}; pull one with \`tunebot model pull ${EXAMPLE_EMBEDDING_REPO} --embedding --out ${dir}\``,
    );
  }
  const present = await Promise.all(REQUIRED_FILES.map((name) => stat(join(dir, name)).then(() => true, () => false)));
  const missing = REQUIRED_FILES.filter((_, i) => !present[i]);
  if (missing.length > 0) throw new ModelError('MODEL_CORRUPT', `${dir} lacks ${missing.join(', ')}, which a sentence-embedding model needs`);
}

/** The pooling 1_Pooling/config.json asks for; mean when the file is absent. */
export async function readPooling(dir: string): Promise<Pooling> {
  const path = join(dir, POOLING_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'mean';
    throw error;
  }
  let modes: Record<string, unknown>;
  try {
    modes = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new ModelError('MODEL_CORRUPT', `${path} is not JSON`, { cause: error });
  }
  const asked = Object.keys(modes).filter((key) => key.startsWith('pooling_mode_') && modes[key] === true);
  if (asked.length === 1 && asked[0] === 'pooling_mode_mean_tokens') return 'mean';
  if (asked.length === 1 && asked[0] === 'pooling_mode_cls_token') return 'cls';
  throw new ModelError(
    'CONFIG_INVALID',
    `${path} asks for ${asked.length === 0 ? 'no pooling' : asked.join(' + ')}; the embedder pools by pooling_mode_mean_tokens or pooling_mode_cls_token alone`,
  );
}
