/** What every adapter turns a platform event into: the engine's only input. */
export interface Scope {
  /** Discord guild or Slack workspace; "local" for the web and terminal chat; "dm" where there is none. */
  readonly workspace: string;
  readonly channel: string;
  readonly thread?: string;
}

export interface Attachment {
  readonly name: string;
  readonly size: number;
  /** Fetches the content (adapters download lazily: only commands that need it ask). */
  bytes(): Promise<Uint8Array>;
}

export interface IncomingMessage {
  readonly platform: string;
  readonly scope: Scope;
  readonly user: { readonly id: string; readonly displayName: string };
  readonly text: string;
  readonly attachments: readonly Attachment[];
  /** The platform's own admin right (Discord Manage Server, Slack workspace admin), as the adapter found it. */
  readonly platformAdmin: boolean;
  /** Aborted when nobody waits for the reply any more (the client went away): generation for it stops. */
  readonly signal?: AbortSignal;
  /** The message this one was made from (`/ask` makes a question of a command): answer listeners hear of it under that one. */
  readonly via?: IncomingMessage;
}

/** A user as memory and rate limits know them: unique across platforms and workspaces. */
export function userKey(message: Pick<IncomingMessage, 'platform' | 'scope' | 'user'>): string {
  return `${message.platform}:${message.scope.workspace}:${message.user.id}`;
}
