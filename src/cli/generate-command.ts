import { loadConfig } from '../core/config.js';
import { type GenerationOptions, resolveGenerationOptions } from '../model/generation/options.js';
import { LanguageModel } from '../model/runtime/language-model.js';
import { type CliCommand, UsageError, deviceOption, integerOption, numberOption, parseCommandArgs } from './args.js';

export const generateCommand: CliCommand = {
  words: ['generate'],
  usage:
    'tunebot generate [--model DIR] "text" [--max-new-tokens N] [--seed N] [--greedy] [--temperature X] [--top-k K] [--top-p P] [--repetition-penalty R] [--stop TEXT]... [--device cpu|cuda|auto]',
  summary: 'stream a continuation of the text to stdout',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, {
      model: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      seed: { type: 'string' },
      greedy: { type: 'boolean' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      stop: { type: 'string', multiple: true },
      device: { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('give the prompt as one argument (quote it)');
    const config = loadConfig();
    const device = deviceOption(values.device, config.model.executionProvider);
    const defaults = config.generation;
    const generation: GenerationOptions = {
      ...defaults,
      maxNewTokens: integerOption(values['max-new-tokens'], 'max-new-tokens', 1) ?? defaults.maxNewTokens,
      seed: integerOption(values.seed, 'seed', 0),
      greedy: values.greedy ?? defaults.greedy,
      temperature: numberOption(values.temperature, 'temperature') ?? defaults.temperature,
      topK: integerOption(values['top-k'], 'top-k', 0) ?? defaults.topK,
      topP: numberOption(values['top-p'], 'top-p') ?? defaults.topP,
      repetitionPenalty: numberOption(values['repetition-penalty'], 'repetition-penalty') ?? defaults.repetitionPenalty,
      stop: values.stop ?? defaults.stop,
    };
    // A mistake in the options is reported before a model of possibly gigabytes is loaded.
    resolveGenerationOptions(generation);
    const model = await LanguageModel.load(values.model ?? config.model.dir, {
      executionProvider: device,
      intraOpThreads: config.model.intraOpThreads,
      weights: config.model.weights,
      logLevel: config.log.level,
    });
    const abort = new AbortController();
    const onInterrupt = () => abort.abort();
    process.once('SIGINT', onInterrupt);
    try {
      const stream = model.generate(positionals[0], { ...generation, signal: abort.signal });
      for await (const piece of stream) process.stdout.write(piece);
      process.stdout.write('\n');
    } finally {
      process.off('SIGINT', onInterrupt);
      await model.close();
    }
  },
};
