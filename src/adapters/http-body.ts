import type { IncomingMessage } from 'node:http';

/**
 * The body, or null when it is over `limit` bytes (the rest is read and dropped). Leaving the
 * loop early destroys the request stream, so the rest of the body is never read: a client still
 * sending stalls, and then gets a reset connection instead of the 413.
 */
export async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  return size > limit ? null : Buffer.concat(chunks);
}
