import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * Slack's Socket Mode on the loopback, as @slack/socket-mode speaks it. apps.connections.open
 * hands out a ws:// URL with a one-use ticket; the app connects there and gets `hello`, then
 * envelopes, each of which it acknowledges by sending back `{ envelope_id, payload }`. As Slack
 * does, the server pings every connection now and then (the app must answer with a pong; it
 * drops a connection that stops pinging) and answers the app's own pings; and a `disconnect`
 * message asks the app to drop the connection and open a new one.
 */
export type EnvelopeType = 'events_api' | 'slash_commands';

export interface SocketConnection {
  readonly id: number;
  readonly openedAt: number;
  closedAt: number | null;
  /** Pongs the app sent back for the server's pings. */
  pongs: number;
  /** Pings the app sent to check on the server. */
  pings: number;
}

export interface DeliveredEnvelope {
  readonly envelopeId: string;
  readonly type: EnvelopeType;
  readonly connection: number;
  readonly at: number;
}

export interface SocketAck {
  readonly envelopeId: string;
  /** What the app answered with; `{}` for a bare ack. */
  readonly payload: Record<string, unknown> | undefined;
  readonly connection: number;
  readonly at: number;
}

export interface DeliverOptions {
  /** Slack's count of earlier deliveries of this event: 0 the first time. */
  readonly retryAttempt?: number;
  readonly retryReason?: string;
}

const DEBUG_HOST = 'applink-loopback-1';
const LINK_PATH = '/link/';

export class LoopbackSocketMode {
  readonly connections: SocketConnection[] = [];
  readonly delivered: DeliveredEnvelope[] = [];
  readonly acks: SocketAck[] = [];
  /** Off: connections open but never get their hello, as when something between drops Slack's frames. */
  sendsHello = true;
  private readonly unusedTickets = new Set<string>();
  private readonly sockets = new Map<SocketConnection, WebSocket>();
  private readonly server = new WebSocketServer({ noServer: true });

  constructor(
    private readonly appId: string,
    private readonly pingIntervalMs: number,
  ) {}

  /** What apps.connections.open answers: a URL on `httpBase`'s host, good for one connection. */
  open(httpBase: string): { url: string } {
    const ticket = randomUUID();
    this.unusedTickets.add(ticket);
    return { url: `${httpBase.replace(/^http/u, 'ws')}${LINK_PATH}?ticket=${ticket}&app_id=${this.appId}` };
  }

  /** The HTTP server's 'upgrade' handler: a ticket handed out and not yet used opens a connection. */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'ws://loopback');
    const ticket = url.searchParams.get('ticket') ?? '';
    if (url.pathname !== LINK_PATH || !this.unusedTickets.delete(ticket)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.server.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
  }

  /** Sends an envelope over the newest open connection; returns its id. */
  deliver(type: EnvelopeType, payload: Record<string, unknown>, options: DeliverOptions = {}): string {
    const [connection] = this.openConnections().slice(-1);
    assert.ok(connection, 'no Socket Mode connection is open to deliver to');
    const envelopeId = randomUUID();
    const retry = type === 'events_api' ? { retry_attempt: options.retryAttempt ?? 0, retry_reason: options.retryReason ?? '' } : {};
    this.sockets.get(connection)?.send(JSON.stringify({ envelope_id: envelopeId, payload, type, accepts_response_payload: type === 'slash_commands', ...retry }));
    this.delivered.push({ envelopeId, type, connection: connection.id, at: Date.now() });
    return envelopeId;
  }

  ackOf(envelopeId: string): SocketAck | undefined {
    return this.acks.find((ack) => ack.envelopeId === envelopeId);
  }

  /** Asks every open connection to reconnect, as Slack does before it recycles a server. */
  refresh(): void {
    const message = JSON.stringify({ type: 'disconnect', reason: 'refresh_requested', debug_info: { host: DEBUG_HOST } });
    for (const connection of this.openConnections()) this.sockets.get(connection)?.send(message);
  }

  openConnections(): SocketConnection[] {
    return this.connections.filter((connection) => connection.closedAt === null);
  }

  async close(): Promise<void> {
    for (const ws of this.sockets.values()) ws.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    const connection: SocketConnection = { id: this.connections.length + 1, openedAt: Date.now(), closedAt: null, pongs: 0, pings: 0 };
    this.connections.push(connection);
    this.sockets.set(connection, ws);
    const pinger = setInterval(() => ws.ping(`ping from the loopback (${Date.now()})`), this.pingIntervalMs);
    ws.on('pong', () => (connection.pongs += 1));
    ws.on('ping', () => (connection.pings += 1));
    ws.on('message', (data, isBinary) => {
      assert.ok(!isBinary, 'the app sent a binary frame');
      const message = JSON.parse(data.toString()) as { envelope_id?: unknown; payload?: Record<string, unknown> };
      assert.equal(typeof message.envelope_id, 'string', `the app sent a message that is not an ack: ${data.toString()}`);
      this.acks.push({ envelopeId: message.envelope_id as string, payload: message.payload, connection: connection.id, at: Date.now() });
    });
    ws.on('close', () => {
      clearInterval(pinger);
      connection.closedAt = Date.now();
      this.sockets.delete(connection);
    });
    const hello = {
      type: 'hello',
      num_connections: this.openConnections().length,
      debug_info: { host: DEBUG_HOST, build_number: 1, approximate_connection_time: 18_060 },
      connection_info: { app_id: this.appId },
    };
    if (this.sendsHello) ws.send(JSON.stringify(hello));
  }
}
