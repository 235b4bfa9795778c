import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Bm25Index, type SearchHit } from '../retrieval/bm25.js';
import type { HybridRetriever } from '../retrieval/hybrid-retriever.js';
import { Lexicon } from '../retrieval/lexicon.js';
import { checkSynonyms, type SynonymGroups } from '../retrieval/synonym-list.js';
import { WordNet } from '../retrieval/wordnet.js';
import type { KeyValueStore } from '../storage/document-store.js';
import { checkUnique, FaqError, normalizeQuestion, toRecord, type FaqEntry, type FaqRecord } from './entry.js';
import { serializeFaq, type FaqFormat } from './formats.js';
import { findOverlaps, type Overlap } from './overlaps.js';


/** From config: each Discord server and Slack workspace has its own FAQ, or all share one. */
export type FaqScopeMode = 'per-scope' | 'shared';

/** The scope key for a guild or workspace; platform-prefixed ids keep a Discord and a Slack id apart. */
export function faqScopeKey(mode: FaqScopeMode, platform: string, scopeId: string): string {
  return mode === 'shared' ? 'shared' : `${platform}:${scopeId}`;
}

export type ImportMode = 'merge' | 'replace';

export interface FaqPage {
  entries: FaqEntry[];
  /** 1-based. */
  page: number;
  pages: number;
  total: number;
  pageSize: number;
  /** The 1-based position of entries[0] in the whole FAQ, which remove() takes as a number. */
  first: number;
}

export interface ImportPreview {
  add: FaqEntry[];
  change: { before: FaqEntry; after: FaqEntry }[];
  unchanged: number;
  /** Entries the file does not have: 'merge' keeps them, 'replace' removes them. */
  remove: FaqEntry[];
  /** The FAQ version the preview was made against; applyImport can insist on it. */
  version: number;
  /** When the file states a synonym list: the FAQ's list, and the file's that replaces it. */
  synonyms?: { before: string[][]; after: string[][] };
  /** Entries that ask nearly the same thing with different answers, at least one of them from the file (overlaps.ts). */
  overlaps: Overlap[];
}

/** What an import takes besides its entries. */
export interface ImportOptions {
  /** The file's synonym list, which replaces the FAQ's; absent leaves the FAQ's as it is. */
  synonyms?: SynonymGroups;
}

export interface ImportResult extends ImportPreview {
  mode: ImportMode;
}

export interface ClearRequest {
  token: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  total: number;
}

export const CLEAR_TOKEN_TTL_MS = 60_000;
export const MAX_PAGE_SIZE = 100;

const entrySchema = z.object({
  id: z.string().min(1),
  question: z.string().min(1),
  answer: z.string().min(1),
  tags: z.array(z.string()),
  // Documents written before alternates existed have none.
  alternates: z.array(z.string()).default([]),
  updatedAt: z.string(),
});

/** One document per scope, written whole, so every change is one write that lands or does not. */
const documentSchema = z.object({
  schema: z.literal(1),
  /** +1 on every write. */
  version: z.number().int().min(0),
  /** Generated ids are q1, q2, ...; never reused. */
  nextId: z.number().int().min(1),
  entries: z.array(entrySchema),
  /** The FAQ's synonym groups (synonym-list.ts); documents from before synonyms have none. */
  synonyms: z.array(z.array(z.string())).default([]),
});
type FaqDocument = z.infer<typeof documentSchema>;

const clearSchema = z.object({ token: z.string(), expiresAt: z.number() });

/** Per store and scope, shared by every FaqStore over them: the search index of the last version seen. */
interface ScopeState {
  index?: { version: number; index: Bm25Index };
}
const scopeStates = new WeakMap<KeyValueStore, Map<string, ScopeState>>();

export interface FaqStoreOptions {
  /** Epoch milliseconds; tests move it. */
  now?: () => number;
  /** WordNet's synonyms in retrieval (the default), or none (null). */
  wordnet?: WordNet | null;
  /** Dense retrieval fused with BM25, when a sentence-embedding model is configured. */
  retriever?: HybridRetriever | null;
}

/** A retrieval hit as the answer policy reads it, from BM25 alone or fused with dense retrieval. */
export type RankedHit = Pick<SearchHit, 'entry' | 'score' | 'confidence' | 'phrasing'>;

/** What the answer policy asks of an FAQ: FaqStore, or a view of it (searchView). */
export interface FaqSearch {
  search(query: string, k: number): Promise<RankedHit[]>;
}

/** BM25 hits given to the fusion: it can promote any of them. */
const FUSED_CANDIDATES = 20;

/** The FAQ of one scope. */
export class FaqStore {
  readonly scope: string;
  private readonly store: KeyValueStore;
  private readonly key: string;
  private readonly now: () => number;
  private readonly state: ScopeState;
  private readonly wordnet: () => WordNet | null;
  private readonly retriever: HybridRetriever | null;

  private constructor(store: KeyValueStore, scope: string, options: FaqStoreOptions) {
    this.store = store;
    this.scope = scope;
    this.key = `faq:${scope}`;
    this.now = options.now ?? Date.now;
    // Loaded on the first search, not at start-up.
    this.wordnet = () => (options.wordnet === undefined ? WordNet.shared() : options.wordnet);
    this.retriever = options.retriever ?? null;
    let states = scopeStates.get(store);
    if (!states) scopeStates.set(store, (states = new Map()));
    let state = states.get(scope);
    if (!state) states.set(scope, (state = {}));
    this.state = state;
  }

  static forScope(store: KeyValueStore, scopeKey: string, options: FaqStoreOptions = {}): FaqStore {
    if (!/^\S+$/.test(scopeKey)) throw new FaqError('FAQ_INVALID', `the FAQ scope "${scopeKey}" must be non-empty with no spaces`);
    return new FaqStore(store, scopeKey, options);
  }

  async entries(): Promise<FaqEntry[]> {
    return (await this.load()).entries;
  }

  async version(): Promise<number> {
    return (await this.load()).version;
  }

  async add(question: string, answer: string, tags: string[] = []): Promise<FaqEntry> {
    const record = toRecord({ question, answer, tags });
    const { result } = await this.write((document) => {
      const existing = findByQuestion(document.entries, record.question);
      if (existing) {
        throw new FaqError('FAQ_DUPLICATE', `the FAQ already has this question as ${existing.id}: "${existing.question}"`);
      }
      const ids = new Set(document.entries.map((entry) => entry.id));
      const [id, nextId] = allocateId(ids, document.nextId);
      const entry: FaqEntry = { id, question: record.question, answer: record.answer, tags: record.tags ?? [], alternates: [], updatedAt: this.timestamp() };
      return { next: { ...document, nextId, entries: [...document.entries, entry] }, result: entry };
    });
    return result;
  }

  async list(page = 1, pageSize = 10): Promise<FaqPage> {
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw new FaqError('FAQ_INVALID', `the page size must be a whole number from 1 to ${MAX_PAGE_SIZE}, got ${pageSize}`);
    }
    const { entries } = await this.load();
    const pages = Math.max(1, Math.ceil(entries.length / pageSize));
    if (!Number.isInteger(page) || page < 1 || page > pages) {
      throw new FaqError('FAQ_NOT_FOUND', `there is no page ${page}; the FAQ has ${pages} page${pages === 1 ? '' : 's'}`);
    }
    const start = (page - 1) * pageSize;
    return { entries: entries.slice(start, start + pageSize), page, pages, total: entries.length, pageSize, first: start + 1 };
  }

  /** By id, else by 1-based position in list order (a number, or digits), else by question. */
  async remove(idOrIndex: string | number): Promise<FaqEntry> {
    const { result } = await this.write((document) => {
      const index = findIndex(document.entries, idOrIndex);
      const removed = document.entries[index];
      return { next: { ...document, entries: document.entries.filter((_, i) => i !== index) }, result: removed };
    });
    return result;
  }

  /** The first step of clear: a token that clear() takes within CLEAR_TOKEN_TTL_MS. */
  async requestClear(): Promise<ClearRequest> {
    const { entries } = await this.load();
    const request = { token: randomBytes(3).toString('hex'), expiresAt: this.now() + CLEAR_TOKEN_TTL_MS };
    await this.store.set(this.clearKey(), request);
    return { ...request, total: entries.length };
  }

  /** Removes every entry; the token is spent either way once it matched. Returns how many were removed. */
  async clear(token: string): Promise<number> {
    const stored = clearSchema.safeParse(await this.store.get(this.clearKey()));
    if (!stored.success || stored.data.token !== token.trim()) {
      throw new FaqError('FAQ_CONFIRMATION', `"${token}" is not the confirmation code; ask to clear again for a new one`);
    }
    await this.store.delete(this.clearKey());
    if (this.now() > stored.data.expiresAt) {
      throw new FaqError('FAQ_CONFIRMATION', `the confirmation code expired (codes last ${CLEAR_TOKEN_TTL_MS / 1000} s); ask to clear again`);
    }
    const { result } = await this.write((document) => ({ next: { ...document, entries: [] }, result: document.entries.length }));
    return result;
  }

  /** What applyImport would do, without doing it. Throws as applyImport would on bad records or synonyms. */
  async previewImport(records: readonly FaqRecord[], options: ImportOptions = {}): Promise<ImportPreview> {
    const document = await this.load();
    return planImport(document, checkRecords(records), 'merge', this.timestamp(), options.synonyms).preview;
  }

  /**
   * Adds and changes the entries of a file, and with 'replace' removes the rest; a synonym list
   * replaces the FAQ's, checked against the entries the import leaves (checkSynonyms). Everything
   * is checked first and the FAQ is written once, so a bad record, a refused synonym list or a
   * failed write changes nothing. With expectedVersion (from a preview) it refuses when the FAQ
   * changed since.
   */
  async applyImport(
    records: readonly FaqRecord[],
    mode: ImportMode,
    options: ImportOptions & { expectedVersion?: number } = {},
  ): Promise<ImportResult> {
    const checked = checkRecords(records);
    const { result, version } = await this.write((document) => {
      if (options.expectedVersion !== undefined && options.expectedVersion !== document.version) {
        throw new FaqError(
          'FAQ_CONFLICT',
          `the FAQ changed since the preview (version ${options.expectedVersion}, now ${document.version}); preview the import again`,
        );
      }
      const plan = planImport(document, checked, mode, this.timestamp(), options.synonyms);
      const { add, change, remove, synonyms } = plan.preview;
      const changed =
        add.length > 0 || change.length > 0 || (mode === 'replace' && remove.length > 0) || (synonyms !== undefined && !sameGroups(synonyms.before, synonyms.after));
      return { next: changed ? plan.document : document, result: plan.preview };
    });
    return { ...result, version, mode };
  }

  /** The entries and the synonym list, read together. */
  async contents(): Promise<{ entries: FaqEntry[]; synonyms: string[][] }> {
    const { entries, synonyms } = await this.load();
    return { entries, synonyms };
  }

  async export(format: FaqFormat): Promise<string> {
    const { entries, synonyms } = await this.load();
    return serializeFaq(entries, format, synonyms);
  }

  /** The overlaps (overlaps.ts) between these entries and the rest of the FAQ, or among them. */
  async overlapsWith(ids: readonly string[]): Promise<Overlap[]> {
    return findOverlaps(await this.entries(), new Set(ids));
  }

  /**
   * BM25 over the current entries and their alternates (the index is rebuilt when the FAQ's
   * version moves), fused with dense retrieval when there is a retriever.
   */
  async search(query: string, k: number): Promise<RankedHit[]> {
    const document = await this.load();
    if (this.state.index?.version !== document.version) {
      this.state.index = { version: document.version, index: this.lexicalIndex(document.entries, document.synonyms) };
    }
    return this.rank(this.state.index.index, document.entries, query, k);
  }

  /**
   * Search, as search() does it, over this FAQ with each entry's alternates chosen by
   * `alternatesOf`: the regression gate asks held-out alternates of an FAQ that does not know
   * them. The view's index is built once, here, and not kept.
   */
  async searchView(alternatesOf: (entry: FaqEntry) => string[]): Promise<FaqSearch> {
    const document = await this.load();
    const entries = document.entries.map((entry) => ({ ...entry, alternates: alternatesOf(entry) }));
    const index = this.lexicalIndex(entries, document.synonyms);
    return { search: (query, k) => this.rank(index, entries, query, k) };
  }

  private lexicalIndex(entries: readonly FaqEntry[], synonyms: SynonymGroups): Bm25Index {
    return new Bm25Index(entries, new Lexicon({ synonyms, wordnet: this.wordnet() }));
  }

  private async rank(index: Bm25Index, entries: readonly FaqEntry[], query: string, k: number): Promise<RankedHit[]> {
    if (!this.retriever) return index.search(query, k);
    return this.retriever.search(query, entries, index.search(query, Math.max(k, FUSED_CANDIDATES)), k);
  }

  /**
   * Adds `phrasing` to an entry's alternates (the learning loop: a question from the inbox
   * linked to the entry that answers it). Refused when another entry already has that phrasing.
   */
  async linkAlternate(idOrIndex: string | number, phrasing: string): Promise<FaqEntry> {
    const { result } = await this.write((document) => {
      const index = findIndex(document.entries, idOrIndex);
      const entry = document.entries[index];
      const record = toRecord({ question: entry.question, answer: entry.answer, alternates: [...entry.alternates, phrasing] });
      const alternates = record.alternates ?? [];
      if (alternates.length === entry.alternates.length) {
        throw new FaqError('FAQ_DUPLICATE', `"${phrasing.trim()}" is already a phrasing of ${entry.id}: "${entry.question}"`);
      }
      const linked: FaqEntry = { ...entry, alternates, updatedAt: this.timestamp() };
      const entries = document.entries.map((existing, i) => (i === index ? linked : existing));
      checkUnique(entries);
      return { next: { ...document, entries }, result: linked };
    });
    return result;
  }

  async synonyms(): Promise<string[][]> {
    return (await this.load()).synonyms;
  }

  /**
   * Replaces the synonym list (an import) or, with mode 'add', adds groups to it. Checked as a
   * whole against the entries: a list that would match most questions to each other is refused.
   */
  async setSynonyms(groups: readonly (readonly string[])[], mode: 'add' | 'replace'): Promise<string[][]> {
    const { result } = await this.write((document) => {
      const synonyms = checkSynonymsFor(document.entries, mode === 'add' ? [...document.synonyms, ...groups] : groups);
      return { next: { ...document, synonyms }, result: synonyms };
    });
    return result;
  }

  /** Removes synonym group `position` (1-based, as listed). */
  async removeSynonymGroup(position: number): Promise<string[]> {
    const { result } = await this.write((document) => {
      const removed = document.synonyms[position - 1];
      if (!Number.isInteger(position) || removed === undefined) {
        throw new FaqError('FAQ_NOT_FOUND', `there is no synonym group ${position}; the list has ${document.synonyms.length}`);
      }
      return { next: { ...document, synonyms: document.synonyms.filter((_, i) => i !== position - 1) }, result: removed };
    });
    return result;
  }

  private async load(): Promise<FaqDocument> {
    return this.parse(await this.store.get(this.key));
  }

  private parse(value: unknown): FaqDocument {
    if (value === undefined || value === null) return { schema: 1, version: 0, nextId: 1, entries: [], synonyms: [] };
    const parsed = documentSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FaqError('FAQ_CORRUPT', `what is stored under ${this.key} is not an FAQ (${issue.path.join('.') || 'document'}: ${issue.message})`);
    }
    return parsed.data;
  }

  /**
   * Runs change on the latest document and stores what it returns with the version moved on,
   * unless it returned the document itself (nothing to change). The store's update is atomic
   * across processes, so bot instances sharing one Redis never drop each other's edits; change
   * may run again on a newer document when another writer got in first. Resolves with the
   * version the FAQ is then at.
   */
  private write<T>(change: (document: FaqDocument) => { next: FaqDocument; result: T }): Promise<{ result: T; version: number }> {
    return this.store.update(this.key, (stored) => {
      const document = this.parse(stored);
      const { next, result } = change(document);
      if (next === document) return { result: { result, version: document.version } };
      const version = document.version + 1;
      return { value: { ...next, version }, result: { result, version } };
    });
  }

  private clearKey(): string {
    return `${this.key}:clear`;
  }

  private timestamp(): string {
    return new Date(this.now()).toISOString();
  }
}

/** checkSynonyms against these entries' words: a list that would match most of them is refused. */
function checkSynonymsFor(entries: readonly FaqEntry[], groups: SynonymGroups): string[][] {
  return checkSynonyms(groups, entries);
}

/** Records from a caller are checked again: every field, and no two alike. */
function checkRecords(records: readonly FaqRecord[]): FaqRecord[] {
  if (records.length === 0) throw new FaqError('FAQ_EMPTY', 'the import has no entries (to empty the FAQ, clear it)');
  const checked = records.map((record) => toRecord(record, record.line));
  checkUnique(checked);
  return checked;
}

/**
 * Matches each record to an entry by id, else by normalized question; a matched entry takes the
 * record's fields (tags only when the record says them), an unmatched record is a new entry.
 * Synonyms, when given, replace the document's once checked against the entries it ends with.
 */
function planImport(
  document: FaqDocument,
  records: readonly FaqRecord[],
  mode: ImportMode,
  now: string,
  synonyms: SynonymGroups | undefined,
): { preview: ImportPreview; document: FaqDocument } {
  const byId = new Map(document.entries.map((entry) => [entry.id, entry]));
  const byQuestion = new Map(document.entries.map((entry) => [normalizeQuestion(entry.question), entry]));
  const ids = new Set([...byId.keys(), ...records.flatMap((record) => (record.id === undefined ? [] : [record.id]))]);
  let nextId = document.nextId;
  const matchedBy = new Map<string, FaqRecord>();
  const after = new Map<string, FaqEntry>();
  const preview: ImportPreview = { add: [], change: [], unchanged: 0, remove: [], version: document.version, overlaps: [] };
  const inFileOrder: FaqEntry[] = [];
  for (const record of records) {
    const existing = (record.id === undefined ? undefined : byId.get(record.id)) ?? byQuestion.get(normalizeQuestion(record.question));
    if (existing === undefined) {
      let id = record.id;
      if (id === undefined) [id, nextId] = allocateId(ids, nextId);
      const entry: FaqEntry = { id, question: record.question, answer: record.answer, tags: record.tags ?? [], alternates: record.alternates ?? [], updatedAt: now };
      preview.add.push(entry);
      inFileOrder.push(entry);
      continue;
    }
    const earlier = matchedBy.get(existing.id);
    if (earlier) {
      throw new FaqError(
        'FAQ_DUPLICATE',
        `${at(record)}"${record.question}" and ${at(earlier) || 'an earlier entry: '}"${earlier.question}" both match the FAQ entry ${existing.id} ("${existing.question}")`,
        { line: record.line },
      );
    }
    matchedBy.set(existing.id, record);
    const updated: FaqEntry = {
      id: record.id ?? existing.id,
      question: record.question,
      answer: record.answer,
      tags: record.tags ?? existing.tags,
      alternates: record.alternates ?? existing.alternates,
      updatedAt: existing.updatedAt,
    };
    if (sameEntry(existing, updated)) {
      preview.unchanged++;
      after.set(existing.id, existing);
      inFileOrder.push(existing);
    } else {
      updated.updatedAt = now;
      preview.change.push({ before: existing, after: updated });
      after.set(existing.id, updated);
      inFileOrder.push(updated);
    }
  }
  preview.remove = document.entries.filter((entry) => !matchedBy.has(entry.id));
  const entries = mode === 'replace' ? inFileOrder : [...document.entries.map((entry) => after.get(entry.id) ?? entry), ...preview.add];
  // A changed question or id can still collide with an entry the file did not mention.
  checkUnique(entries);
  preview.overlaps = findOverlaps(entries, new Set(inFileOrder.map((entry) => entry.id)));
  if (synonyms === undefined) return { preview, document: { ...document, nextId, entries } };
  preview.synonyms = { before: document.synonyms, after: checkSynonymsFor(entries, synonyms) };
  return { preview, document: { ...document, nextId, entries, synonyms: preview.synonyms.after } };
}

function allocateId(used: Set<string>, nextId: number): [string, number] {
  let counter = nextId;
  while (used.has(`q${counter}`)) counter++;
  const id = `q${counter}`;
  used.add(id);
  return [id, counter + 1];
}

function findByQuestion(entries: readonly FaqEntry[], question: string): FaqEntry | undefined {
  const normalized = normalizeQuestion(question);
  return entries.find((entry) => normalizeQuestion(entry.question) === normalized);
}

function findIndex(entries: readonly FaqEntry[], idOrIndex: string | number): number {
  if (typeof idOrIndex === 'number') {
    if (!Number.isInteger(idOrIndex) || idOrIndex < 1 || idOrIndex > entries.length) {
      throw new FaqError('FAQ_NOT_FOUND', `there is no entry number ${idOrIndex}; the FAQ has ${entries.length} entries`);
    }
    return idOrIndex - 1;
  }
  const byId = entries.findIndex((entry) => entry.id === idOrIndex.trim());
  if (byId !== -1) return byId;
  // From a chat command a position arrives as text.
  if (/^\s*\d+\s*$/.test(idOrIndex)) return findIndex(entries, Number(idOrIndex));
  const byQuestion = entries.findIndex((entry) => normalizeQuestion(entry.question) === normalizeQuestion(idOrIndex));
  if (byQuestion !== -1) return byQuestion;
  throw new FaqError('FAQ_NOT_FOUND', `no FAQ entry has the id or question "${idOrIndex}"; the list shows each entry's id`);
}

function sameEntry(a: FaqEntry, b: FaqEntry): boolean {
  return (
    a.id === b.id && a.question === b.question && a.answer === b.answer && sameList(a.tags, b.tags) && sameList(a.alternates, b.alternates)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

function sameGroups(a: readonly (readonly string[])[], b: readonly (readonly string[])[]): boolean {
  return a.length === b.length && a.every((group, i) => sameList(group, b[i]));
}

function at(record: FaqRecord): string {
  return record.line === undefined ? '' : `line ${record.line}: `;
}
