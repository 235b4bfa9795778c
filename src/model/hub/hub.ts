import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ModelError } from '../errors.js';
import {
  type HubConnection,
  TransientError,
  describe,
  discard,
  readText,
  request,
  statusError,
  throwIfAborted,
} from './hub-http.js';

export interface PullProgress {
  file: string;
  /** Bytes of this file on disk so far, resumed bytes included. */
  receivedBytes: number;
  totalBytes: number;
  /** 0-based position of file among the fileCount files of this pull. */
  fileIndex: number;
  fileCount: number;
}

export interface PullOptions {
  /** Hub repo id: "owner/name" or "name". */
  repo: string;
  /** Branch, tag or commit; default 'main'. */
  revision?: string;
  outDir: string;
  /** Default process.env.HF_ENDPOINT ?? 'https://huggingface.co'. */
  endpoint?: string;
  /** Default process.env.HF_TOKEN. */
  token?: string;
  /** Which files to take; default gpt2Checkpoint(). */
  files?: FileSelection;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  /** Retries of a dropped connection or a 5xx/429 answer, per request; default 3. */
  retries?: number;
}

export interface PullResult {
  outDir: string;
  commit: string;
  /** Paths relative to outDir, in download order. */
  files: string[];
}

interface HubFile {
  path: string;
  size: number;
  /** Present for LFS files, whose content the hub knows by sha256. */
  sha256?: string;
}

interface Sibling {
  rfilename: string;
  size?: number;
  lfs?: { sha256?: string; size?: number };
}

const DEFAULT_ENDPOINT = 'https://huggingface.co';
const DEFAULT_RETRIES = 3;
const STAGING_DIR = '.partial';
const COMMIT_MARKER = '.commit';

/**
 * Which of a repo's files a pull takes, in download order, given the names the repo has and
 * "repo@revision" for messages. Throws HUB_ERROR when the repo lacks what the folder needs.
 */
export type FileSelection = (available: ReadonlySet<string>, where: string) => string[];

const WEIGHTS_FILE = 'model.safetensors';
// The model folder loaders need these; the tokenizer loader reads tokenizer.json with its config.
const REQUIRED_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', WEIGHTS_FILE];
const OPTIONAL_FILES = ['generation_config.json', 'vocab.json', 'merges.txt'];
/** As the hub names it (always with '/'). */
export const ONNX_FILE = 'onnx/model.onnx';
// Exports over 2 GB keep their tensors beside the graph; the graph alone cannot be loaded then.
export const ONNX_EXTERNAL_DATA_FILE = 'onnx/model.onnx_data';
const OTHER_CHECKPOINTS = ['pytorch_model.bin', 'model.safetensors.index.json', 'tf_model.h5', 'flax_model.msgpack'];

interface PullContext extends HubConnection {
  retries: number;
}

/**
 * Downloads a model's files (a GPT-2 checkpoint unless options.files says otherwise) from the
 * hub into outDir. Files are staged in outDir/.partial and moved into outDir together once all
 * are complete and verified, so outDir never holds half a model. An interrupted pull leaves .partial behind and the next pull of the same commit resumes it.
 */
export async function pullFromHub(options: PullOptions): Promise<PullResult> {
  const ctx = pullContext(options);
  const repo = checkRepoId(options.repo);
  const revision = options.revision ?? 'main';
  if (revision === '') throw new ModelError('OPTIONS_INVALID', 'revision must not be empty');
  throwIfAborted(ctx.signal);

  const listing = await fetchListing(ctx, repo, revision);
  const files = selectFiles(listing.siblings, repo, revision, options.files ?? gpt2Checkpoint());
  const stagingDir = join(options.outDir, STAGING_DIR);
  await prepareStaging(stagingDir, listing.commit);

  for (const [fileIndex, file] of files.entries()) {
    const report = (receivedBytes: number): void =>
      options.onProgress?.({ file: file.path, receivedBytes, totalBytes: file.size, fileIndex, fileCount: files.length });
    const stagedPath = join(stagingDir, file.path);
    if ((await sizeOf(stagedPath)) === file.size) {
      report(file.size);
      continue;
    }
    const url = `${ctx.endpoint}/${repo}/resolve/${encodeURIComponent(listing.commit)}/${encodePath(file.path)}`;
    await withRetries(ctx, `download of ${file.path}`, () => downloadAttempt(ctx, url, file, stagedPath, report));
  }

  for (const file of files) {
    const finalPath = join(options.outDir, file.path);
    await mkdir(dirname(finalPath), { recursive: true });
    await rename(join(stagingDir, file.path), finalPath);
  }
  await rm(stagingDir, { recursive: true, force: true });
  return { outDir: options.outDir, commit: listing.commit, files: files.map((file) => file.path) };
}

function pullContext(options: PullOptions): PullContext {
  const endpoint = (options.endpoint ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint)) {
    throw new ModelError('OPTIONS_INVALID', `hub endpoint must be an http:// or https:// URL, got "${endpoint}"`);
  }
  const retries = options.retries ?? DEFAULT_RETRIES;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new ModelError('OPTIONS_INVALID', `retries must be a whole number >= 0, got ${retries}`);
  }
  const token = options.token ?? (process.env.HF_TOKEN || undefined);
  return { endpoint, token, signal: options.signal, retries };
}

function checkRepoId(repo: string): string {
  const part = '[A-Za-z0-9][A-Za-z0-9_.-]*';
  if (!new RegExp(`^${part}(/${part})?$`).test(repo) || repo.includes('..')) {
    throw new ModelError('OPTIONS_INVALID', `"${repo}" is not a hub repo id; expected "owner/name", e.g. "openai-community/gpt2"`);
  }
  return repo;
}

async function fetchListing(ctx: PullContext, repo: string, revision: string): Promise<{ commit: string; siblings: Sibling[] }> {
  const url = `${ctx.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const body = await withRetries(ctx, `listing of ${repo}@${revision}`, async () => {
    const res = await request(ctx, url);
    if (res.statusCode !== 200) throw await statusError(ctx, res, `${repo}@${revision}`, 'repo or revision not found');
    try {
      return await readText(res, Infinity);
    } catch (error) {
      throwIfAborted(ctx.signal);
      throw new TransientError(`connection dropped during the listing (${describe(error)})`, { cause: error });
    }
  });
  let parsed: { sha?: unknown; siblings?: unknown };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch (error) {
    throw new ModelError('HUB_ERROR', `${ctx.endpoint} answered the listing of ${repo} with something other than JSON`, { cause: error });
  }
  if (!Array.isArray(parsed.siblings)) {
    throw new ModelError('HUB_ERROR', `the listing of ${repo}@${revision} from ${ctx.endpoint} has no file list (siblings)`);
  }
  const commit = typeof parsed.sha === 'string' && parsed.sha !== '' ? parsed.sha : revision;
  return { commit, siblings: parsed.siblings as Sibling[] };
}

function selectFiles(siblings: Sibling[], repo: string, revision: string, select: FileSelection): HubFile[] {
  const byName = new Map(siblings.map((sibling) => [sibling.rfilename, sibling]));
  return select(new Set(byName.keys()), `${repo}@${revision}`).map((name) => hubFile(byName.get(name) as Sibling, repo));
}

/** A GPT-2 checkpoint: config, tokenizer files and model.safetensors; with includeOnnx its ONNX export too. */
export function gpt2Checkpoint(includeOnnx = false): FileSelection {
  return (available, where) => {
    if (!available.has(WEIGHTS_FILE)) {
      const found = OTHER_CHECKPOINTS.filter((name) => available.has(name));
      const foundText = found.length > 0 ? ` (it has ${found.join(', ')})` : '';
      throw new ModelError('HUB_ERROR', `${where} has no ${WEIGHTS_FILE}${foundText}; only single-file safetensors checkpoints are supported`);
    }
    const missing = REQUIRED_FILES.filter((name) => !available.has(name));
    if (missing.length > 0) {
      throw new ModelError('HUB_ERROR', `${where} lacks ${missing.join(', ')}, which a model folder needs`);
    }
    const wanted = [...REQUIRED_FILES.filter((name) => name !== WEIGHTS_FILE), ...OPTIONAL_FILES.filter((name) => available.has(name))];
    // The small files go first, so a broken repo fails before the large download.
    wanted.push(WEIGHTS_FILE);
    if (includeOnnx) {
      if (!available.has(ONNX_FILE)) {
        throw new ModelError('HUB_ERROR', `${where} has no ${ONNX_FILE}; pull without ONNX to build the graph from the weights`);
      }
      wanted.push(ONNX_FILE);
      if (available.has(ONNX_EXTERNAL_DATA_FILE)) wanted.push(ONNX_EXTERNAL_DATA_FILE);
    }
    return wanted;
  };
}

function hubFile(sibling: Sibling, repo: string): HubFile {
  const size = sibling.lfs?.size ?? sibling.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ModelError('HUB_ERROR', `the listing of ${repo} gives no size for ${sibling.rfilename}, so its download cannot be checked`);
  }
  return { path: sibling.rfilename, size, sha256: sibling.lfs?.sha256 };
}

/** Starts .partial afresh unless it was left by a pull of the same commit, whose bytes can be resumed. */
async function prepareStaging(stagingDir: string, commit: string): Promise<void> {
  const markerPath = join(stagingDir, COMMIT_MARKER);
  const previousCommit = await readFile(markerPath, 'utf8').catch(() => undefined);
  if (previousCommit === commit) return;
  await rm(stagingDir, { recursive: true, force: true });
  await mkdir(stagingDir, { recursive: true });
  await writeFile(markerPath, commit);
}

async function downloadAttempt(
  ctx: PullContext,
  url: string,
  file: HubFile,
  stagedPath: string,
  report: (receivedBytes: number) => void,
): Promise<void> {
  const partialPath = `${stagedPath}.incomplete`;
  await mkdir(dirname(partialPath), { recursive: true });
  let offset = (await sizeOf(partialPath)) ?? 0;
  if (offset > file.size) {
    await rm(partialPath);
    offset = 0;
  }
  let hasher = file.sha256 ? createHash('sha256') : undefined;
  // The digest must cover the whole file, bytes kept from an earlier attempt or pull included.
  if (hasher && offset > 0) await hashFile(partialPath, hasher);

  // An empty file still needs one request to exist.
  if (offset < file.size || file.size === 0) {
    const res = await request(ctx, url, offset > 0 ? `bytes=${offset}-` : undefined);
    if (res.statusCode === 200) {
      offset = 0;
      hasher = file.sha256 ? createHash('sha256') : undefined;
    } else if (res.statusCode === 206) {
      const start = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1];
      if (Number(start) !== offset) {
        discard(res);
        await rm(partialPath, { force: true });
        throw new TransientError(`asked for ${file.path} from byte ${offset}, got content-range "${res.headers['content-range']}"`);
      }
    } else if (res.statusCode === 416) {
      discard(res);
      await rm(partialPath, { force: true });
      throw new TransientError(`the server refused to resume ${file.path} from byte ${offset}`);
    } else {
      throw await statusError(ctx, res, file.path, 'file not found');
    }
    report(offset);
    await appendBody(ctx, res, partialPath, offset, file.path, (chunk, received) => {
      hasher?.update(chunk);
      report(received);
    });
  }

  const size = (await sizeOf(partialPath)) ?? 0;
  if (size < file.size) throw new TransientError(`${file.path} ended after ${size} of ${file.size} bytes`);
  if (size > file.size) await corrupt(partialPath, file, `is ${size} bytes, the hub lists ${file.size}`);
  const digest = hasher?.digest('hex');
  if (file.sha256 && digest !== file.sha256) {
    await corrupt(partialPath, file, `has sha256 ${digest}, the hub lists ${file.sha256}`);
  }
  await rename(partialPath, stagedPath);
}

/**
 * Writes the body chunk by chunk, each write awaited, so that after a drop the file holds every
 * byte received and the next attempt can resume from its size.
 */
async function appendBody(
  ctx: PullContext,
  res: IncomingMessage,
  partialPath: string,
  offset: number,
  name: string,
  onWritten: (chunk: Buffer, received: number) => void,
): Promise<void> {
  const handle = await open(partialPath, offset > 0 ? 'a' : 'w');
  let received = offset;
  let writeFailed = false;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      await handle.write(chunk).catch((error: unknown) => {
        writeFailed = true;
        throw error;
      });
      received += chunk.length;
      onWritten(chunk, received);
    }
  } catch (error) {
    discard(res);
    // A full disk is not a network problem: no retry would help.
    if (writeFailed) throw error;
    throwIfAborted(ctx.signal);
    throw new TransientError(`connection dropped during ${name} (${describe(error)})`, { cause: error });
  } finally {
    await handle.close();
  }
}

async function corrupt(partialPath: string, file: HubFile, reason: string): Promise<never> {
  await rm(partialPath, { force: true });
  throw new ModelError('DOWNLOAD_CORRUPT', `downloaded ${file.path} ${reason}; the partial file was deleted, pull again to retry`);
}

async function withRetries<T>(ctx: PullContext, what: string, attempt: () => Promise<T>): Promise<T> {
  for (let failures = 0; ; failures++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      if (failures >= ctx.retries) {
        throw new ModelError(
          'HUB_ERROR',
          `${what} failed after ${failures + 1} attempts: ${error.message}; pull again to resume`,
          { cause: error },
        );
      }
      try {
        await sleep(Math.min(250 * 2 ** failures, 8000), undefined, { signal: ctx.signal });
      } catch {
        throwIfAborted(ctx.signal);
      }
    }
  }
}

async function hashFile(path: string, hasher: Hash): Promise<void> {
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hasher.update(chunk);
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}
