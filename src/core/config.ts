import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CodedError } from '../coded-error.js';
import { WEIGHT_TYPES } from '../model/quantize.js';

const discordId = z.string().regex(/^\d{17,20}$/u, 'must be a Discord id (17 to 20 digits)');

/**
 * tunebot's configuration: config/default.json, then the JSON file named by TUNEBOT_CONFIG
 * (if any), then environment variables. Every leaf has an environment variable named after
 * its path: model.executionProvider is TUNEBOT_MODEL_EXECUTION_PROVIDER.
 */
export const configSchema = z
  .object({
    model: z
      .object({
        /** The model folder the bot serves. */
        dir: z.string().min(1),
        /** The shape of a model made from scratch when the folder is empty. */
        preset: z.enum(['tiny', 'gpt2', 'gpt2-medium']),
        executionProvider: z.enum(['cpu', 'cuda', 'auto']),
        /** Threads per operator; 0 lets ONNX Runtime use every core. */
        intraOpThreads: z.number().int().min(0),
        /** The weights as the model runs: float32, or int8 / int4 block-quantized at load (faster decode, slightly different logits). */
        weights: z.enum(WEIGHT_TYPES),
        maxBatchSize: z.number().int().min(1).max(256),
        /** A Hugging Face repo (e.g. "gpt2") to pull as the first model instead of a new one of `preset`. */
        pull: z.string().min(1).nullable(),
        /**
         * A model server (`tunebot serve-model`, e.g. http://gpu-box:8090) that generates for this
         * instance, so that bot instances need no GPU; null runs the model in this process.
         */
        server: z.url().nullable(),
      })
      .strict(),
    modelServer: z
      .object({
        /** The port `tunebot serve-model` listens on (at local.host). */
        port: z.number().int().min(0).max(65535),
      })
      .strict(),
    generation: z
      .object({
        maxNewTokens: z.number().int().min(1),
        greedy: z.boolean(),
        temperature: z.number().min(0),
        topK: z.number().int().min(0),
        topP: z.number().gt(0).max(1),
        repetitionPenalty: z.number().gt(0),
        stop: z.array(z.string().min(1)),
      })
      .strict(),
    hub: z
      .object({
        /** The Hugging Face hub, or a mirror; HF_ENDPOINT overrides it too. */
        endpoint: z.url(),
      })
      .strict(),
    storage: z
      .object({
        url: z.string().regex(/^(sqlite|redis|rediss):\/\//u, 'must start with sqlite://, redis:// or rediss://'),
        /** Goes before every key: several bots (or test runs) can share one Redis. The instances of one bot share it. */
        namespace: z.string().regex(/^[\w.-]+$/u, 'must be letters, digits, _ . or -'),
      })
      .strict(),
    faq: z.object({ scope: z.enum(['shared', 'per-scope']) }).strict(),
    retrieval: z
      .object({
        /**
         * A sentence-embedding model folder (`tunebot model pull <repo> --embedding`): when it
         * exists, retrieval is BM25 and dense, fused; null or a missing folder is BM25 alone.
         */
        embeddingModel: z.string().min(1).nullable(),
      })
      .strict(),
    engine: z
      .object({
        /** platform:userId pairs that are admins whatever the platform says. */
        admins: z.array(z.string().regex(/^\w+:.+$/u, 'must be platform:userId')),
        confidentMatch: z.number().min(0).max(1),
        relevantMatch: z.number().min(0).max(1),
        topK: z.number().int().min(1).max(20),
        instructions: z.string(),
        fallback: z.string().min(1),
        maxMessageChars: z.number().int().min(1),
        rateLimit: z.object({ perMinute: z.number().positive(), burst: z.number().int().min(1) }).strict(),
        memory: z.object({ maxTurns: z.number().int().min(0), maxTokens: z.number().int().min(0), ttlHours: z.number().positive() }).strict(),
        debug: z.boolean(),
      })
      .strict(),
    fineTune: z
      .object({
        epochs: z.number().int().min(1),
        learningRate: z.number().positive(),
        batchSize: z.number().int().min(1),
        /** Micro-batches per optimizer step: a smaller batch that fits in memory, with the same effective batch. */
        accumulate: z.number().int().min(1),
        /** 0 fine-tunes every weight; a rank trains LoRA adapters instead. */
        lora: z.number().int().min(0),
        /** auto: promote when the gate does not do worse; force: always; hold: never (use /model use). */
        gate: z.enum(['auto', 'force', 'hold']),
        /** Noisy forms of each entry's phrasings (dropped words, typos, shorthand) that training asks besides them. */
        noisyQuestions: z.number().int().min(0),
        /** Noisy questions per entry that the regression gate asks besides its held-out alternates, never trained on. */
        heldOutQuestions: z.number().int().min(0),
        /** Steps between checkpoints: a cancelled, restarted or crashed job resumes from the last one. */
        checkpointEvery: z.number().int().min(1),
        /**
         * instance: the instance that takes /model finetune trains, in a trainer process of its own;
         * queue: the job goes to a BullMQ queue on the storage's Redis and a `tunebot worker` process runs it.
         */
        runner: z.enum(['instance', 'queue']),
        /** Queue runner: how long a worker that stopped answering keeps its job before the job fails (and waits for a retry). */
        workerLockSeconds: z.number().positive(),
      })
      .strict(),
    local: z
      .object({
        port: z.number().int().min(0).max(65535),
        /** The address tunebot's HTTP servers listen on: loopback by default, 0.0.0.0 in a container. */
        host: z.string().min(1),
      })
      .strict(),
    ops: z
      .object({
        /** /healthz and /metrics: "chat" serves them on the local chat's port, a port number on their own server, 0 nowhere. */
        port: z.preprocess(
          (value) => (typeof value === 'string' && /^\d+$/u.test(value) ? Number(value) : value),
          z.union([z.literal('chat'), z.number().int().min(0).max(65535)], { error: 'must be "chat" or a port number 0-65535' }),
        ),
      })
      .strict(),
    slack: z
      .object({
        /** socket: the bot connects out to Slack with the app token; http: Slack posts to /slack/events, checked with the signing secret. */
        mode: z.enum(['http', 'socket']),
        /** The bot token (xoxb-); the Slack adapter runs when it is set. SLACK_BOT_TOKEN sets it too. */
        botToken: z.string().min(1).nullable(),
        /** HTTP mode. SLACK_SIGNING_SECRET sets it too. */
        signingSecret: z.string().min(1).nullable(),
        /** Socket Mode (xapp-, connections:write). SLACK_APP_TOKEN sets it too. */
        appToken: z.string().min(1).nullable(),
        /** HTTP mode's port; Slack's Request URL is https://<your host>/slack/events, through a TLS proxy. */
        port: z.number().int().min(0).max(65535),
        /** The Web API's base address; null is https://slack.com/api/. Tests point it at a loopback server. */
        apiUrl: z.url().nullable(),
      })
      .strict(),
    discord: z
      .object({
        /** The bot token; the Discord adapter runs when it is set. DISCORD_TOKEN sets it too. */
        token: z.string().min(1).nullable(),
        /** Guilds to register the slash commands in (they show at once); empty registers them globally. */
        guildIds: z.array(discordId),
        /** Channels (and their threads) where every message is answered, not only mentions; needs the Message Content intent. */
        channels: z.array(discordId),
        /**
         * Off: one gateway connection, or the shards a discord.js ShardingManager hands the process.
         * On: the shards in shardIds of shardCount (one instance of several), or with shardIds
         * empty every shard Discord recommends, in this process.
         */
        sharding: z.boolean(),
        shardIds: z.array(z.number().int().min(0)),
        /** The total across instances; 0 when shardIds is empty. */
        shardCount: z.number().int().min(0),
        /** The REST API's base address; null is Discord's. Tests point it at a loopback server. */
        apiUrl: z.url().nullable(),
      })
      .strict()
      .refine((discord) => discord.shardIds.every((id) => id < discord.shardCount) && new Set(discord.shardIds).size === discord.shardIds.length, {
        message: 'shard ids must be different and each less than shardCount (ids run from 0 to shardCount - 1); a shard run twice answers its guilds twice',
        path: ['shardIds'],
      }),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) }).strict(),
  })
  .strict()
  .refine((config) => config.fineTune.runner === 'instance' || /^rediss?:\/\//u.test(config.storage.url), {
    message: 'the queue runner needs Redis storage (storage.url redis://...), where its queue lives',
    path: ['fineTune', 'runner'],
  });

export type TunebotConfig = z.infer<typeof configSchema>;

/** The configuration file, or a variable that overrides it, is unreadable or does not fit the schema. */
export class ConfigError extends CodedError<'CONFIG_INVALID'> {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

const DEFAULT_CONFIG_URL = new URL('../../config/default.json', import.meta.url);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): TunebotConfig {
  const defaults = readJson(DEFAULT_CONFIG_URL, 'config/default.json');
  const file = env.TUNEBOT_CONFIG ? readJson(env.TUNEBOT_CONFIG, env.TUNEBOT_CONFIG) : {};
  const merged = deepMerge(defaults, file);
  applyEnvironment(merged, env);
  // The names the wider ecosystem already uses win over the defaults too.
  if (env.HF_ENDPOINT) (merged.hub as JsonObject).endpoint = env.HF_ENDPOINT;
  if (env.LOG_LEVEL && !env.TUNEBOT_LOG_LEVEL) (merged.log as JsonObject).level = env.LOG_LEVEL;
  for (const [name, key] of [['SLACK_BOT_TOKEN', 'botToken'], ['SLACK_SIGNING_SECRET', 'signingSecret'], ['SLACK_APP_TOKEN', 'appToken']] as const) {
    if (env[name] && !env[envName(['slack', key])]) (merged.slack as JsonObject)[key] = env[name];
  }
  if (env.DISCORD_TOKEN && !env[envName(['discord', 'token'])]) (merged.discord as JsonObject).token = env.DISCORD_TOKEN;
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')} (${envName(issue.path.map(String))}): ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** TUNEBOT_ + the path in SCREAMING_SNAKE_CASE. */
export function envName(path: readonly string[]): string {
  return ['TUNEBOT', ...path.map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())].join('_');
}

type JsonObject = Record<string, unknown>;

function readJson(path: string | URL, label: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${label}: ${(error as Error).message}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as JsonObject;
  } catch (error) {
    throw new ConfigError(`${label} is not valid: ${(error as Error).message}`);
  }
}

function deepMerge(base: JsonObject, override: JsonObject): JsonObject {
  const merged: JsonObject = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = merged[key];
    merged[key] = isObject(current) && isObject(value) ? deepMerge(current, value) : value;
  }
  return merged;
}

/** Overwrites each leaf whose variable is set, parsed by the type of the default's value. */
function applyEnvironment(config: JsonObject, env: NodeJS.ProcessEnv, path: string[] = []): void {
  for (const [key, value] of Object.entries(config)) {
    const leafPath = [...path, key];
    if (isObject(value)) {
      applyEnvironment(value, env, leafPath);
      continue;
    }
    const raw = env[envName(leafPath)];
    if (raw === undefined) continue;
    config[key] = parseEnvValue(raw, value, envName(leafPath));
  }
}

function parseEnvValue(raw: string, example: unknown, name: string): unknown {
  if (typeof example === 'number') {
    const value = Number(raw);
    if (raw.trim() === '' || Number.isNaN(value)) throw new ConfigError(`${name} must be a number, got "${raw}"`);
    return value;
  }
  if (typeof example === 'boolean') {
    if (raw !== 'true' && raw !== 'false') throw new ConfigError(`${name} must be true or false, got "${raw}"`);
    return raw === 'true';
  }
  if (Array.isArray(example)) {
    try {
      return JSON.parse(raw);
    } catch {
      throw new ConfigError(`${name} must be a JSON array, got "${raw}"`);
    }
  }
  return raw;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
