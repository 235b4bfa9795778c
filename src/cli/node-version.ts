import { readFileSync } from 'node:fs';
import { CodedError } from '../coded-error.js';

/** package.json's engines.node: src/cli and dist/cli both sit two folders below it. */
export function enginesNode(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines?: { node?: string } };
  return manifest.engines?.node ?? '';
}

export class NodeVersionError extends CodedError<'NODE_TOO_OLD'> {}

/**
 * Null when `running` (a process.version) meets `engines` (">=N"), else the error to show. The
 * CLI asks before it opens storage: better-sqlite3 13 is built for N-API 10, and an older Node
 * dies of a segfault as it loads it, with nothing said.
 */
export function nodeTooOld(running: string, engines: string): NodeVersionError | null {
  const minimum = /^>=\s*(\d+)$/u.exec(engines.trim())?.[1];
  if (minimum === undefined) throw new Error(`package.json's engines.node is ${JSON.stringify(engines)}, not ">=N"`);
  const major = Number(/^v?(\d+)\./u.exec(running)?.[1]);
  if (major >= Number(minimum)) return null;
  return new NodeVersionError(
    'NODE_TOO_OLD',
    `tunebot needs Node ${minimum} or later (engines: node ${engines}), and this is Node ${running}; ` +
      `run it through npm (npm start, npx tunebot), which uses the Node ${minimum} that npm ci puts in node_modules/.bin, or install Node ${minimum}`,
  );
}
