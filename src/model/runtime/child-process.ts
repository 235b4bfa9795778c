import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Starts the module `name` that sits beside `callerUrl` (import.meta.url of the caller) as a
 * child Node process with an IPC channel (structured-clone messages, like a worker's). Built,
 * it is name.js; run from sources (tests, tsx), it is name.ts, started with tsx's loader.
 * `env` is added to this process's environment.
 */
export function startChildProcess(callerUrl: string, name: string, env: Record<string, string> = {}): ChildProcess {
  const fromSources = callerUrl.endsWith('.ts');
  const module = fileURLToPath(new URL(`./${name}.${fromSources ? 'ts' : 'js'}`, callerUrl));
  // Resolved here, from this file: the child may start in any working folder.
  const execArgv = fromSources ? ['--import', import.meta.resolve('tsx')] : [];
  return fork(module, [], { execArgv, env: { ...process.env, ...env }, serialization: 'advanced' });
}
