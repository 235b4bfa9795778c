import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { cudaProviderLibrary } from '../../src/model/runtime/session.js';

const SCRIPT = fileURLToPath(new URL('../../bench/gpu-check.sh', import.meta.url));
const VOCABULARY = 50257;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gpuCheck(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(SCRIPT, [...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

function lines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function metric(records: Record<string, unknown>[], name: string): Record<string, unknown> {
  const found = records.find((record) => record.metric === name);
  assert.ok(found, `no ${name} line in ${JSON.stringify(records)}`);
  return found;
}

function hasNvidiaSmi(): boolean {
  try {
    execFileSync('nvidia-smi', ['-L'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const scratchFolders = () => new Set(readdirSync(tmpdir()).filter((name) => name.startsWith('tunebot-gpu-check-')));

describe('bench/gpu-check.sh', () => {
  it('runs the CPU half alone with --cpu-only: tokens/s from its own token counts and times, the untouched loss at ln(vocabulary)', async () => {
    const before = scratchFolders();
    const run = await gpuCheck(['--cpu-only', '--preset', 'tiny', '--prompts', '2', '--prompt-tokens', '16', '--new-tokens', '12', '--steps', '2', '--batch', '2', '--length', '16']);
    assert.equal(run.code, 0, run.stderr);
    const records = lines(run.stdout);
    assert.ok(records.every((record) => record.bench === 'gpu-check'));

    for (const name of ['generate_tokens_per_s', 'generate_batched_tokens_per_s']) {
      const line = metric(records, name);
      assert.equal(line.model, 'tiny');
      assert.equal(line.cuda, null);
      assert.equal(line.cuda_vs_cpu, null);
      const tokens = (line.tokens as { cpu: number }).cpu;
      const ms = (line.ms as { cpu: number }).cpu;
      // Greedy from fixed prompts and seed-0 weights: every request runs to its 12 tokens.
      assert.equal(tokens, 2 * 12);
      assert.ok(Math.abs((line.cpu as number) - (tokens * 1000) / ms) <= 0.01 * (line.cpu as number), JSON.stringify(line));
    }

    const fineTune = metric(records, 'finetune_tokens_per_s');
    assert.equal(fineTune.cuda, null);
    const meanStepMs = (fineTune.mean_step_ms as { cpu: number }).cpu;
    assert.ok(Math.abs((fineTune.cpu as number) - (2 * 16 * 1000) / meanStepMs) <= 0.01 * (fineTune.cpu as number), JSON.stringify(fineTune));
    assert.ok((fineTune.best_step_ms as { cpu: number }).cpu <= meanStepMs);
    // GPT-2's initialization gives near-zero logits: a uniform guess over the vocabulary.
    assert.ok(Math.abs((fineTune.first_loss as { cpu: number }).cpu - Math.log(VOCABULARY)) < 0.05, JSON.stringify(fineTune));
    assert.ok(Number.isFinite((fineTune.last_loss as { cpu: number }).cpu));

    assert.equal(records.at(-1)?.result, 'passed');
    // The project's own report of the provider: the model worker's log and the trainer's gradient session (AdamW runs in JavaScript).
    assert.equal(run.stderr.match(/"provider":"cpu","msg":"model session runs on CPU"/g)?.length, 2, run.stderr);
    assert.deepEqual([...scratchFolders()].filter((name) => !before.has(name)), []);
  });

  it('fails with a line per missing piece, and what to install, where there is no GPU', { skip: hasNvidiaSmi() && 'this machine has nvidia-smi' }, async () => {
    const run = await gpuCheck(['--preset', 'tiny', '--new-tokens', '16']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^gpu-check: FAILED \(NO_NVIDIA_DRIVER\): nvidia-smi is not on PATH/m);
    assert.match(run.stderr, /^gpu-check: FAILED \(NO_CUDA_PROVIDER\): /m);
    if (!existsSync(cudaProviderLibrary())) {
      assert.match(run.stderr, /onnxruntime-node has no CUDA provider \(.*libonnxruntime_providers_cuda\.so is missing\); install it with `ONNXRUNTIME_NODE_INSTALL=cuda12 /);
      assert.match(run.stderr, /docker build --build-arg TARGET=cuda/);
    }
    const records = lines(run.stdout);
    // Nothing was measured: the checks come before the model.
    assert.deepEqual(
      records.map((record) => [record.result, record.code]),
      [
        ['failed', 'NO_NVIDIA_DRIVER'],
        ['failed', 'NO_CUDA_PROVIDER'],
      ],
    );
  });

  it('refuses arguments it cannot run, with the rule and the usage', async () => {
    const preset = await gpuCheck(['--cpu-only', '--preset', 'gpt3']);
    assert.equal(preset.code, 2);
    assert.match(preset.stderr, /--preset must be one of tiny, gpt2, gpt2-medium, got "gpt3"/);
    assert.match(preset.stderr, /usage: bench\/gpu-check\.sh/);
    const tooLong = await gpuCheck(['--cpu-only', '--preset', 'tiny', '--new-tokens', '120']);
    assert.equal(tooLong.code, 2);
    assert.match(tooLong.stderr, /--prompt-tokens plus --new-tokens must fit tiny's 128 positions, got 32 \+ 120/);
    assert.equal(tooLong.stdout, '');
  });

  it('stops at its time limit with a FAILED line and leaves no scratch folder', async () => {
    const before = scratchFolders();
    const run = await gpuCheck(['--cpu-only', '--preset', 'tiny', '--new-tokens', '16', '--steps', '1000'], { GPU_CHECK_LIMIT_S: '4' });
    assert.equal(run.code, 124, run.stderr);
    assert.match(run.stderr, /^gpu-check: FAILED: did not finish within 4 s$/m);
    assert.deepEqual([...scratchFolders()].filter((name) => !before.has(name)), []);
  });
});
