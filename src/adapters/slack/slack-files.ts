import type { webApi } from '@slack/bolt';
import { FaqError } from '../../core/faq/entry.js';
import { MAX_FAQ_FILE_BYTES } from '../../core/faq/formats.js';
import type { Attachment } from '../../core/conversation/message.js';
import { SlackAdapterError } from './errors.js';

/**
 * Files shared in Slack, as the engine's attachments. A message's event names its files; the
 * content is behind url_private, which Slack serves only with the bot token (files:read) and
 * answers with its sign-in web page otherwise. files.info is asked at download time, since
 * an event's file object can be partial (file_access: "check_file_info").
 */
export interface SlackFileRef {
  readonly id: string;
  readonly name?: string;
  readonly size?: number;
}

export interface SlackFiles {
  /** The attachment for a shared file; asks files.info first when the event left out the name. */
  attachment(file: SlackFileRef): Promise<Attachment>;
  /** The newest file `user` shared in `channel` within `withinMs`, for "/faq import" as a slash command. */
  latestShared(channel: string, user: string, withinMs: number): Promise<SlackFileRef | null>;
}

export function slackFiles(client: webApi.WebClient, botToken: string): SlackFiles {
  const describe = async (id: string) => {
    const { file } = await client.files.info({ file: id });
    const url = file?.url_private_download ?? file?.url_private;
    if (!file || !url) throw new SlackAdapterError('SLACK_FILE_UNAVAILABLE', `files.info gave no download address for file ${id}`);
    return { name: file.name ?? id, size: file.size ?? 0, url };
  };
  return {
    async attachment(file) {
      const known = file.name ? { name: file.name, size: file.size ?? 0 } : await describe(file.id);
      return {
        name: known.name,
        size: known.size,
        async bytes() {
          const { name, size, url } = await describe(file.id);
          if (size > MAX_FAQ_FILE_BYTES) throw tooLarge(name, size);
          return download(url, name, botToken);
        },
      };
    },
    async latestShared(channel, user, withinMs) {
      const since = Math.floor((Date.now() - withinMs) / 1000);
      const { files } = await client.files.list({ channel, user, ts_from: String(since), count: 1 });
      const newest = files?.[0];
      return newest?.id ? { id: newest.id, name: newest.name, size: newest.size } : null;
    },
  };
}

async function download(url: string, name: string, botToken: string): Promise<Uint8Array> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${botToken}` } });
  if (!response.ok || !response.body) throw new SlackAdapterError('SLACK_FILE_UNAVAILABLE', `downloading ${name} from Slack failed: HTTP ${response.status}`);
  if ((response.headers.get('content-type') ?? '').startsWith('text/html')) {
    await response.body.cancel();
    throw new SlackAdapterError('SLACK_FILE_UNAVAILABLE', `Slack sent its sign-in page instead of ${name}: the bot token needs the files:read scope`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early cancels the stream, so an oversize file is not read to its end.
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > MAX_FAQ_FILE_BYTES) break;
    chunks.push(chunk);
  }
  if (size > MAX_FAQ_FILE_BYTES) throw tooLarge(name, size);
  return Buffer.concat(chunks);
}

function tooLarge(name: string, size: number): FaqError {
  return new FaqError('FAQ_TOO_LARGE', `${name} is over ${MAX_FAQ_FILE_BYTES.toLocaleString('en')} bytes (${size.toLocaleString('en')} or more); FAQ files are smaller`);
}
