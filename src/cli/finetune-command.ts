import { loadConfig } from '../core/config.js';
import { createProgressBar } from './progress.js';
import { readExamplesJsonl } from '../model/training/data.js';
import { startFineTune } from '../model/training/fine-tune-job.js';
import { DEFAULT_FINE_TUNE, type FineTuneSettings } from '../model/training/trainer.js';
import { type CliCommand, UsageError, deviceOption, integerOption, numberOption, parseCommandArgs } from './args.js';

export const finetuneCommand: CliCommand = {
  words: ['finetune'],
  usage:
    'tunebot finetune --model DIR --data FILE.jsonl --out DIR [--lora R] [--lora-alpha A] [--epochs N] [--max-steps N] [--lr X] [--batch N] [--accumulate N] [--validation F] [--patience N] [--seed N] [--checkpoint-every N] [--device cpu|cuda|auto]',
  summary: 'fine-tune a model on {"prompt", "completion"} lines; a new model folder with training.json and loss-curve.png',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, {
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      lora: { type: 'string' },
      'lora-alpha': { type: 'string' },
      epochs: { type: 'string' },
      'max-steps': { type: 'string' },
      lr: { type: 'string' },
      batch: { type: 'string' },
      accumulate: { type: 'string' },
      validation: { type: 'string' },
      patience: { type: 'string' },
      seed: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      device: { type: 'string' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!values.data) throw new UsageError('--data FILE.jsonl is required');
    if (!values.out) throw new UsageError('--out DIR is required');
    const config = loadConfig();
    const device = deviceOption(values.device, config.model.executionProvider);
    const rank = integerOption(values.lora, 'lora', 1);
    const settings: FineTuneSettings = {
      ...DEFAULT_FINE_TUNE,
      modelDir: values.model ?? config.model.dir,
      outDir: values.out,
      lora: rank ? { rank, alpha: numberOption(values['lora-alpha'], 'lora-alpha') ?? 2 * rank } : undefined,
      epochs: integerOption(values.epochs, 'epochs', 1) ?? DEFAULT_FINE_TUNE.epochs,
      maxSteps: integerOption(values['max-steps'], 'max-steps', 1),
      learningRate: numberOption(values.lr, 'lr') ?? DEFAULT_FINE_TUNE.learningRate,
      batchSize: integerOption(values.batch, 'batch', 1) ?? DEFAULT_FINE_TUNE.batchSize,
      accumulate: integerOption(values.accumulate, 'accumulate', 1) ?? DEFAULT_FINE_TUNE.accumulate,
      validationFraction: numberOption(values.validation, 'validation') ?? DEFAULT_FINE_TUNE.validationFraction,
      earlyStopPatience: integerOption(values.patience, 'patience', 0) ?? DEFAULT_FINE_TUNE.earlyStopPatience,
      seed: integerOption(values.seed, 'seed', 0) ?? DEFAULT_FINE_TUNE.seed,
      checkpointEvery: integerOption(values['checkpoint-every'], 'checkpoint-every', 1) ?? DEFAULT_FINE_TUNE.checkpointEvery,
      executionProvider: device,
    };
    const examples = await readExamplesJsonl(values.data);
    let bar: ReturnType<typeof createProgressBar> | null = null;
    const job = startFineTune(settings, examples, {
      logLevel: config.log.level,
      onWarning: (message) => process.stderr.write(`warning: ${message}\n`),
      onProgress: (progress) => {
        bar ??= createProgressBar('fine-tuning', progress.totalSteps, process.stderr, { unit: 'count' });
        bar.update(progress.step, `loss ${progress.loss.toFixed(4)} lr ${progress.learningRate.toExponential(2)} ${Math.round(progress.tokensPerSecond)} tok/s`);
      },
    });
    const onInterrupt = () => {
      process.stderr.write('\nstopping at the next step (a checkpoint lets the same command resume) ...\n');
      job.cancel();
    };
    process.once('SIGINT', onInterrupt);
    try {
      const record = await job.result;
      (bar as ReturnType<typeof createProgressBar> | null)?.finish();
      const lastValidation = record.validation.at(-1);
      console.log(
        `fine-tuned ${record.steps} steps in ${Math.round(record.seconds)} s: train loss ${record.finalTrainLoss.toFixed(4)}` +
          (lastValidation ? `, validation loss ${lastValidation.loss.toFixed(4)}` : '') +
          `${record.stoppedEarly ? ' (stopped early)' : ''}; model in ${settings.outDir} (loss curve: ${settings.outDir}/loss-curve.png)`,
      );
    } finally {
      process.off('SIGINT', onInterrupt);
    }
  },
};
