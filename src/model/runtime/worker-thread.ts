import { Worker } from 'node:worker_threads';

/**
 * Starts the worker module `name` that sits beside `callerUrl` (import.meta.url of the caller).
 * Built, it is name.js. Run from sources (tests, tsx), it is name.ts, and a worker does not
 * inherit tsx's loader, so a small bootstrap registers it first.
 */
export function startWorkerThread(callerUrl: string, name: string, workerData: unknown): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), { workerData });
  const source = new URL(`./${name}.ts`, callerUrl).href;
  // Resolved here, from this file: an eval'd worker resolves bare names from the working folder, which may be anywhere.
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(source)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
