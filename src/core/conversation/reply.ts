import { formatBytes } from '../../byte-size.js';

/**
 * A reply is a stream of parts: text, in pieces as it is written, and files (an FAQ export, a
 * loss curve) that each adapter posts the way its platform carries files. Text-only readers
 * take replyText; adapters render files and say so in text when a platform will not take one.
 */
export interface ReplyFile {
  readonly kind: 'file';
  /** A plain file name, with its extension: faq.json, loss-curve-v2.png. */
  readonly name: string;
  /** Its MIME type: application/json, image/png. */
  readonly contentType: string;
  readonly data: Uint8Array;
  /** A line shown with the file, where the platform has room for one. */
  readonly title?: string;
}

export type ReplyPart = string | ReplyFile;

export function isReplyFile(part: ReplyPart): part is ReplyFile {
  return typeof part !== 'string';
}

/** The whole reply, text joined and files in the order they came. */
export async function collectReply(parts: AsyncIterable<ReplyPart>): Promise<{ text: string; files: ReplyFile[] }> {
  let text = '';
  const files: ReplyFile[] = [];
  for await (const part of parts) {
    if (isReplyFile(part)) files.push(part);
    else text += part;
  }
  return { text, files };
}

/** What a platform says instead of a file over its size limit. */
export function fileTooLargeNote(file: ReplyFile, platform: string, limitBytes: number): string {
  return `I cannot send ${file.name} here: it is ${formatBytes(file.data.byteLength)}, and ${platform} takes files up to ${formatBytes(limitBytes)}.`;
}

/** What a platform says instead of a file it refused; `reason` is the platform's own words. */
export function fileRefusedNote(file: ReplyFile, platform: string, reason: string): string {
  return `I could not send ${file.name}: ${platform} refused the upload (${reason}).`;
}
