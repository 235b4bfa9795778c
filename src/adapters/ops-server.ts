import { createServer, type IncomingMessage as HttpRequest, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { METRICS_CONTENT_TYPE } from '../core/metrics.js';
import type { Logger } from '../log.js';

/**
 * What an operator's tools ask a running bot:
 *   GET /healthz   200 "ok" when it serves with a model loaded; 503 and the reason otherwise
 *   GET /metrics   Prometheus text format
 * on the local chat's server (config ops.port "chat") or on a server of their own.
 */
export interface OpsEndpoints {
  readonly readiness: Readiness;
  readonly metrics: { render(): Promise<string> };
}

export type Health = { readonly ready: true } | { readonly ready: false; readonly reason: string };

/** Starting (first-start preparations), serving, stopping: only a serving bot with a model is ready. */
export class Readiness {
  private phase: 'starting' | 'serving' | 'stopping' = 'starting';

  constructor(private readonly model: { readonly version: string | null }) {}

  serving(): void {
    this.phase = 'serving';
  }

  stopping(): void {
    this.phase = 'stopping';
  }

  check(): Health {
    if (this.phase === 'starting') return { ready: false, reason: 'starting: preparing the model and the FAQ' };
    if (this.phase === 'stopping') return { ready: false, reason: 'shutting down' };
    if (this.model.version === null) return { ready: false, reason: 'no model is loaded' };
    return { ready: true };
  }
}

/**
 * Answers /healthz and /metrics; false for any other request, which is the caller's to route.
 * /metrics is written once its figures are gathered (prom-client collects them asynchronously).
 */
export function serveOps(ops: OpsEndpoints, request: HttpRequest, response: ServerResponse): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  const { pathname } = new URL(request.url ?? '/', 'http://localhost');
  if (pathname === '/healthz') {
    const health = ops.readiness.check();
    response.writeHead(health.ready ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    response.end(health.ready ? 'ok' : health.reason);
    return true;
  }
  if (pathname === '/metrics') {
    ops.metrics.render().then(
      (text) => response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`cannot gather the metrics: ${error instanceof Error ? error.message : String(error)}`),
    );
    return true;
  }
  return false;
}

/** The ops endpoints on a server of their own, for a bot whose chat has no HTTP server. */
export async function startOpsServer(ops: OpsEndpoints, options: { host: string; port: number; logger: Logger }): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    try {
      if (!serveOps(ops, request, response)) {
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`no route ${request.method} ${request.url}; this server has GET /healthz and GET /metrics`);
      }
    } catch (error) {
      options.logger.error({ err: error }, 'ops request failed');
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('internal error');
    }
  });
  await listen(server, options.host, options.port);
  return { server, url: serverUrl(server, options.host) };
}

export async function listen(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The URL to reach a listening server; one listening on every address is reached on loopback. */
export function serverUrl(server: Server, host: string): string {
  const { port } = server.address() as AddressInfo;
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** How long replies in flight may run on after a shutdown begins before their connections are cut. */
export const SHUTDOWN_GRACE_MS = 30_000;

/**
 * Stops accepting connections and lets the requests in flight finish; after `graceMs` the
 * connections still open are cut. Resolves when the server has closed.
 */
export function closeGracefully(server: Server, graceMs: number, onTimeout: () => void): Promise<void> {
  return new Promise((resolve) => {
    // A keep-alive connection whose reply has ended would hold close() for its idle timeout.
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const timer = setTimeout(() => {
      onTimeout();
      server.closeAllConnections();
    }, graceMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
