import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A Hugging Face hub on 127.0.0.1 that serves one repo at one commit: the revision listing,
 * plain files from the hub itself, and LFS files through a redirect to a second server on
 * another origin, as huggingface.co does. Faults (dropped connections, corrupt or oversize
 * content, ignored Range headers, failing listings) are switched on per setup.
 */
export interface LoopbackHubSetup {
  readonly repo: string;
  /** The 40-hex commit the listing reports; files are served only under it. */
  readonly commit: string;
  /** Non-LFS files, served by the hub itself. */
  readonly files: Readonly<Record<string, Uint8Array>>;
  /** LFS files: the hub redirects them to the second server. */
  readonly lfsFiles: Readonly<Record<string, Uint8Array>>;
  readonly listingStatus?: number;
  /** The first `times` requests for `file` get `bytes` bytes and then a dropped connection. */
  readonly drop?: { readonly file: string; readonly bytes: number; readonly times: number };
  readonly ignoreRange?: boolean;
  /** Listed with their true sha256 and size, served with the first byte changed. */
  readonly corrupt?: readonly string[];
  /** Served with one byte more than listed. */
  readonly oversize?: readonly string[];
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  path: string;
  range?: string;
  authorization?: string;
  status: number;
}

export interface LoopbackHub {
  endpoint: string;
  requests: RecordedRequest[];
  fileRequests(file: string): RecordedRequest[];
  close(): Promise<void>;
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A loopback port that was free a moment ago and has nothing listening on it now. */
export async function closedPort(): Promise<number> {
  const probe = http.createServer();
  const port = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export async function startLoopbackHub(setup: LoopbackHubSetup): Promise<LoopbackHub> {
  const { repo, commit, files, lfsFiles } = setup;
  const requests: RecordedRequest[] = [];
  const requestCounts = new Map<string, number>();

  const serveContent = (req: http.IncomingMessage, res: http.ServerResponse, name: string, listed: Uint8Array): void => {
    let content = Buffer.from(listed);
    if (setup.corrupt?.includes(name)) content = Buffer.concat([Buffer.from([listed[0] ^ 0xff]), content.subarray(1)]);
    if (setup.oversize?.includes(name)) content = Buffer.concat([content, Buffer.from('x')]);
    const count = (requestCounts.get(name) ?? 0) + 1;
    requestCounts.set(name, count);
    const range = setup.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = content.subarray(start);
    const headers: http.OutgoingHttpHeaders = { 'content-length': body.length };
    if (range) headers['content-range'] = `bytes ${start}-${content.length - 1}/${content.length}`;
    res.writeHead(range ? 206 : 200, headers);
    if (setup.drop && setup.drop.file === name && count <= setup.drop.times) {
      // The pause lets the client take in what was sent before it sees the connection close.
      res.write(body.subarray(0, setup.drop.bytes), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  };

  const record = (server: 'hub' | 'cdn', req: http.IncomingMessage, status: number): void => {
    requests.push({ server, path: req.url ?? '', range: req.headers.range, authorization: req.headers.authorization, status });
  };

  const cdn = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '').replace(/^\/blobs\//, ''));
    const content = lfsFiles[name];
    record('cdn', req, content ? 200 : 404);
    if (!content) return void res.writeHead(404).end();
    serveContent(req, res, name, content);
  });
  const cdnPort = await listen(cdn);

  const hub = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    const listing = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (listing) {
      if (listing[1] !== repo || setup.listingStatus) {
        const status = setup.listingStatus ?? 404;
        record('hub', req, status);
        if (status === 404) {
          res.writeHead(404, { 'content-type': 'application/json', 'x-error-code': 'RepoNotFound' });
          return void res.end(JSON.stringify({ error: 'Repository not found' }));
        }
        res.writeHead(status, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: 'Invalid credentials in Authorization header' }));
      }
      record('hub', req, 200);
      assert.equal(url.searchParams.get('blobs'), 'true');
      const siblings = [
        ...Object.entries(files).map(([rfilename, content]) => ({ rfilename, size: content.length })),
        ...Object.entries(lfsFiles).map(([rfilename, content]) => ({
          rfilename,
          size: content.length,
          lfs: { sha256: createHash('sha256').update(content).digest('hex'), size: content.length, pointerSize: 134 },
        })),
      ];
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ id: repo, sha: commit, siblings }));
    }
    if (resolve && resolve[1] === repo && resolve[2] === commit) {
      const name = decodeURIComponent(resolve[3]);
      if (lfsFiles[name]) {
        record('hub', req, 302);
        return void res.writeHead(302, { location: `http://127.0.0.1:${cdnPort}/blobs/${encodeURIComponent(name)}` }).end();
      }
      if (files[name]) {
        record('hub', req, 200);
        return serveContent(req, res, name, files[name]);
      }
    }
    record('hub', req, 404);
    res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
  });
  const hubPort = await listen(hub);

  return {
    endpoint: `http://127.0.0.1:${hubPort}`,
    requests,
    fileRequests: (file) =>
      requests.filter((r) => r.path.endsWith(`/resolve/${commit}/${file}`) || r.path === `/blobs/${encodeURIComponent(file)}`),
    async close() {
      for (const server of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}
