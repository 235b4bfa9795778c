import type { webApi } from '@slack/bolt';
import { fileRefusedNote, fileTooLargeNote, type ReplyFile } from '../../core/conversation/reply.js';
import type { Logger } from '../../log.js';

/** Slack takes files up to 1 GB. */
export const SLACK_UPLOAD_LIMIT = 1024 * 1024 * 1024;

/** Where a reply's files go: the conversation of its text, and its thread if it has one. */
export interface UploadDestination {
  readonly channel: string;
  readonly threadTs?: string;
}

/**
 * Shares a reply's files where its text went, with the Web API client's files.uploadV2 (which
 * asks files.getUploadURLExternal for an address, POSTs the bytes there, and shares the file
 * with files.completeUploadExternal in the channel and thread). Needs the files:write scope.
 * Returns a line for each file Slack did not take, saying why, for the reply's text.
 */
export async function uploadReplyFiles(client: webApi.WebClient, files: readonly ReplyFile[], destination: UploadDestination, limitBytes: number, logger: Logger): Promise<string[]> {
  const notes: string[] = [];
  for (const file of files) {
    if (file.data.byteLength > limitBytes) {
      notes.push(fileTooLargeNote(file, 'Slack', limitBytes));
      continue;
    }
    const where = destination.threadTs ? { channel_id: destination.channel, thread_ts: destination.threadTs } : { channel_id: destination.channel };
    try {
      await client.files.uploadV2({
        ...where,
        file: Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength),
        filename: file.name,
        title: file.name,
        initial_comment: file.title,
      });
    } catch (error) {
      logger.warn({ err: error, file: file.name, bytes: file.data.byteLength, channel: destination.channel }, 'Slack refused a file upload');
      notes.push(fileRefusedNote(file, 'Slack', slackReason(error)));
    }
  }
  return notes;
}

/** Slack's error code (not_in_channel, ...) when the Web API gave one, else the error's message. */
function slackReason(error: unknown): string {
  const code = (error as { data?: { error?: unknown } }).data?.error;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.message : String(error);
}
