import type { FaqStore } from '../../src/core/faq/faq-store.js';
import { type FaqFormat, parseFaqDocument } from '../../src/core/faq/formats.js';
import type { IncomingMessage } from '../../src/core/conversation/message.js';
import type { ReplyPart } from '../../src/core/conversation/reply.js';

/** For the adapters' tests of files in replies: an engine that attaches one, and FAQ exports read back. */
export const FILE_LINE = 'Here it is.';

/** The bytes of data.bin as fileEngine attaches it: 200 when the message says "big", else 50. */
export function dataBin(big: boolean): Uint8Array {
  return new Uint8Array(big ? 200 : 50).fill(7);
}

/** Says FILE_LINE, then attaches data.bin (see dataBin): what is tested is how the adapter delivers it. */
export const fileEngine = {
  async *handle(message: IncomingMessage): AsyncIterable<ReplyPart> {
    yield FILE_LINE;
    yield { kind: 'file', name: 'data.bin', contentType: 'application/octet-stream', data: dataBin(message.text.includes('big')) };
  },
};

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The questions and answers an exported FAQ file reads back as. */
export function exportedEntries(bytes: Uint8Array, format: FaqFormat): [string, string][] {
  return parseFaqDocument(bytes, format).records.map((record) => [record.question, record.answer]);
}

/** The questions and answers an FAQ holds, to compare an export with. */
export async function faqEntries(faq: FaqStore): Promise<[string, string][]> {
  return (await faq.entries()).map((entry) => [entry.question, entry.answer]);
}
