import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parameterCount } from '../../model/config.js';
import { JobBusyError, type JobRecord } from '../fine-tuning/fine-tune-jobs.js';
import { describeLiveEvaluation } from '../fine-tuning/model-scorer.js';
import type { ReplyFile } from '../conversation/reply.js';
import type { IncomingMessage } from '../conversation/message.js';
import { type Command, CommandUsageError } from './command.js';

const PROGRESS_EVERY_MS = 10_000;

const finetune: Command = {
  words: ['model', 'finetune'],
  usage: 'model finetune [epochs N] [lora R]',
  summary: 'fine-tune the model on this FAQ in the background, then test and swap it in',
  admin: true,
  async *run({ message, args, services }) {
    const overrides: { epochs?: number; lora?: { rank: number; alpha: number } } = {};
    for (let i = 0; i < args.length; i += 2) {
      const value = Number(args[i + 1]);
      if (!Number.isInteger(value) || value < 1) throw new CommandUsageError(`"${args[i]}" needs a whole number after it.`);
      if (args[i] === 'epochs') overrides.epochs = value;
      else if (args[i] === 'lora') overrides.lora = { rank: value, alpha: 2 * value };
      else throw new CommandUsageError(`Unknown option "${args[i]}".`);
    }
    let started;
    try {
      started = await services.jobs.start(services.faqFor(message), jobScope(message), `${message.platform}:${message.user.id}`, overrides);
    } catch (error) {
      if (error instanceof JobBusyError) {
        yield `Not started: ${error.message}`;
        return;
      }
      throw error;
    }
    yield `Fine-tuning started (job ${started.record.id}). I will report every ${PROGRESS_EVERY_MS / 1000} s.\n`;
    for (;;) {
      const finished = await Promise.race([started.done, new Promise<null>((resolve) => setTimeout(() => resolve(null), PROGRESS_EVERY_MS))]);
      if (finished) {
        yield describeJob(finished);
        if (finished.version) yield* lossCurve(services.registry.dirOf(finished.version), finished.version);
        return;
      }
      const progress = started.record.progress;
      if (progress) yield `step ${progress.step}/${progress.totalSteps}, loss ${progress.loss.toFixed(3)}, about ${Math.ceil(progress.etaSeconds)} s left\n`;
    }
  },
};

/** Fine-tunes run one at a time per platform workspace (a Discord server, a Slack workspace). */
function jobScope(message: IncomingMessage): string {
  return `${message.platform}:${message.scope.workspace}`;
}

export function describeJob(record: JobRecord): string {
  const lines = [`Job ${record.id}: ${record.status}.`];
  if (record.training) lines.push(`Trained ${record.training.steps} steps in ${Math.round(record.training.seconds)} s; final loss ${record.training.finalTrainLoss.toFixed(3)}.`);
  if (record.gate) lines.push(`Gate: ${record.gate.reason}.`);
  if (record.status === 'promoted') lines.push(`Version ${record.version} is live.`);
  if (record.status === 'held') lines.push(`Version ${record.version} is kept; /model use ${record.version} makes it live.`);
  if (record.error) lines.push(record.error);
  return lines.join('\n');
}

/** The trained version's loss curve (the trainer writes loss-curve.png beside the weights), when it has one. */
async function* lossCurve(dir: string, version: string): AsyncIterable<ReplyFile> {
  let data: Uint8Array;
  try {
    data = await readFile(join(dir, 'loss-curve.png'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  yield { kind: 'file', name: `loss-curve-${version}.png`, contentType: 'image/png', data, title: `Training loss of ${version}.` };
}

const status: Command = {
  words: ['model', 'status'],
  usage: 'model status',
  summary: 'the live version, where it runs, and the last training',
  admin: false,
  async run({ services }) {
    const info = services.model.info;
    const lines = [
      info
        ? `Live model ${services.model.version} on ${info.provider.toUpperCase()}: ${parameterCount(info.config).toLocaleString('en')} parameters, ${info.config.n_layer} layers, context ${info.config.n_positions}.`
        : 'No model is loaded.',
    ];
    const job = await services.jobs.last();
    if (job) lines.push(job.status === 'running' && job.progress ? `Fine-tuning: step ${job.progress.step}/${job.progress.totalSteps}, loss ${job.progress.loss.toFixed(3)}.` : describeJob(job));
    return lines.join('\n');
  },
};

const cancel: Command = {
  words: ['model', 'cancel'],
  usage: 'model cancel',
  summary: 'stop the running fine-tune at its next step',
  admin: true,
  async run({ message, services }) {
    return (await services.jobs.cancel(jobScope(message))) ? 'Stopping the fine-tune at its next step; it keeps a checkpoint, so /model finetune resumes it.' : 'No fine-tune is running.';
  },
};

const versions: Command = {
  words: ['model', 'versions'],
  usage: 'model versions',
  summary: 'every model version, with its training summary',
  admin: false,
  async run({ services }) {
    const all = await services.registry.versions();
    if (all.length === 0) return 'There are no model versions yet.';
    return all
      .map((version) => {
        const training = version.training as { steps?: number; finalTrainLoss?: number; finishedAt?: string } | null;
        const summary = training?.steps ? `fine-tuned ${training.steps} steps, loss ${training.finalTrainLoss?.toFixed(3)}, ${training.finishedAt?.slice(0, 16)}` : 'base model';
        return `${version.current ? '*' : ' '} ${version.version}: ${summary}`;
      })
      .join('\n');
  },
};

const use: Command = {
  words: ['model', 'use'],
  usage: 'model use <version>',
  summary: 'make a version live (a rollback, or a held version)',
  admin: true,
  async run({ args, services }) {
    if (args.length !== 1) throw new CommandUsageError('Give one version, e.g. v2 (see /model versions).');
    // The rollout loads it first: the pointer moves only once the version is serving.
    await services.rollout.goLive(args[0]);
    return `Version ${args[0]} is live.`;
  },
};

const evaluate: Command = {
  words: ['model', 'eval'],
  usage: 'model eval',
  summary: "the regression gate's figures for the live version",
  admin: true,
  async run({ message, services }) {
    const evaluation = await services.scorer.scoreLive(services.faqFor(message));
    return describeLiveEvaluation({ version: evaluation?.version ?? null, evaluation });
  },
};

export const modelCommands: readonly Command[] = [finetune, status, cancel, versions, use, evaluate];
