import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI from its sources, as a child process (bin/tunebot.js needs `npm run build` first). */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join('src', 'cli', 'main.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The environment without what would steer the child: the CLI's own TUNEBOT_* and HF_*
 * settings, and node:test's context (the child is no test). Logs at warn unless `extra` says.
 */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(TUNEBOT_|HF_|NODE_TEST_CONTEXT$)/.test(name)) env[name] = value;
  }
  return { ...env, LOG_LEVEL: 'warn', ...extra };
}

export function tunebot(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, env: cleanEnv(env) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

export function assertExit(result: CliResult, code: number): void {
  assert.equal(result.code, code, `exit code\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
}
