import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
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

/** A long-running CLI command (`tunebot start`, `tunebot serve-model`), its output collected as it comes. */
export interface RunningTunebot {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
  /** Resolves when `condition` holds on the output; fails when the process ends first or after `timeoutMs`. */
  until(condition: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** The first match of `pattern`'s first group in stdout, once it shows. */
  stdoutMatch(pattern: RegExp, what: string, timeoutMs?: number): Promise<string>;
  /** The exit code; fails when the process has not exited `ms` after the call. */
  exitCodeWithin(ms: number): Promise<number | null>;
  /** SIGKILL, for a test that failed with the process still running. */
  kill(): Promise<void>;
}

/** `cwd`, the working folder, is the repository unless given; tsx and the CLI are found from anywhere. */
export function startTunebot(args: readonly string[], env: Record<string, string> = {}, cwd = REPO_ROOT): RunningTunebot {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(REPO_ROOT, MAIN), ...args], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let ended = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      ended = true;
      resolve(code);
    });
  });
  const running: RunningTunebot = {
    child,
    stdout: '',
    stderr: '',
    exited,
    async until(condition, what, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!condition()) {
        if (ended) assert.fail(`tunebot exited (code ${child.exitCode}) before ${what}:\n${running.stdout}\n${running.stderr}`);
        if (Date.now() > deadline) assert.fail(`no ${what} after ${timeoutMs / 1000} s:\n${running.stdout}\n${running.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stdoutMatch(pattern, what, timeoutMs) {
      await running.until(() => pattern.test(running.stdout), what, timeoutMs);
      return pattern.exec(running.stdout)?.[1] as string;
    },
    async exitCodeWithin(ms) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`tunebot did not exit within ${ms / 1000} s:\n${running.stderr}`)), ms);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async kill() {
      if (!ended) child.kill('SIGKILL');
      await exited;
    },
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (running.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (running.stderr += chunk));
  return running;
}
