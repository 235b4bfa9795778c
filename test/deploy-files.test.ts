import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { envName, loadConfig } from '../src/core/config.js';

/**
 * The Dockerfile and docker-compose.yml against the code they deploy. CI cannot run Docker, so a
 * misspelt setting (which tunebot would never read) or a stage, port or path out of step is
 * caught here; .ci/image-steps.sh runs the image's steps themselves.
 */
const read = (name: string) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

function dockerfileInstructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/gu, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/u);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** TUNEBOT_... for every setting in config/default.json. */
function settingVariables(): Set<string> {
  const names = new Set<string>();
  const walk = (value: unknown, path: string[]) => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) walk(child, [...path, key]);
    } else names.add(envName(path));
  };
  walk(JSON.parse(read('config/default.json')), []);
  return names;
}

interface ComposeService {
  readonly build?: { readonly args?: Record<string, string> };
  readonly environment?: Record<string, string>;
  readonly ports?: readonly string[];
  readonly volumes?: readonly string[];
  readonly command?: readonly string[];
  readonly deploy?: { readonly resources?: { readonly reservations?: { readonly devices?: readonly { readonly driver?: string }[] } } };
}

const instructions = dockerfileInstructions(read('Dockerfile'));
const imageEnv = Object.fromEntries(instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/gu)].map(([, name, value]) => [name, value])));
const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };

describe('Dockerfile', () => {
  it('sets only settings tunebot reads, with values its config accepts', () => {
    const known = settingVariables();
    const tunebotVariables = Object.keys(imageEnv).filter((name) => name.startsWith('TUNEBOT_'));
    assert.ok(tunebotVariables.length >= 4, `the image configures tunebot: ${tunebotVariables.join(', ')}`);
    for (const name of tunebotVariables) assert.ok(known.has(name), `${name} is not a tunebot setting`);
    const config = loadConfig(imageEnv);
    assert.equal(config.local.host, '0.0.0.0');
    assert.ok(config.model.dir.startsWith('/data/'), config.model.dir);
    assert.match(config.storage.url, /^sqlite:\/\/\/data\//u);
  });

  it('has a stage for each TARGET, and checks the health and exposes the port the bot listens on', () => {
    const stages = new Set(instructions.filter((i) => i.keyword === 'FROM').map((i) => /\bAS\s+(\S+)$/iu.exec(i.args)?.[1]));
    const defaultTarget = instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('TARGET='))?.args.slice('TARGET='.length);
    assert.equal(defaultTarget, 'cpu');
    for (const target of ['cpu', 'cuda']) for (const stage of [`deps-${target}`, `runtime-${target}`]) assert.ok(stages.has(stage), `stage ${stage}`);
    const port = imageEnv.TUNEBOT_LOCAL_PORT;
    assert.ok(instructions.some((i) => i.keyword === 'EXPOSE' && i.args === port), `EXPOSE ${port}`);
    const healthcheck = instructions.find((i) => i.keyword === 'HEALTHCHECK');
    assert.ok(healthcheck?.args.includes(`http://127.0.0.1:${port}/healthz`), healthcheck?.args);
    assert.ok(instructions.some((i) => i.keyword === 'USER' && i.args !== 'root'), 'the bot runs as a user other than root');
    assert.deepEqual(JSON.parse(instructions.filter((i) => i.keyword === 'CMD').at(-1)?.args ?? '[]'), ['node', 'bin/tunebot.js', 'start']);
  });

  it('runs the Node major that package.json engines asks for and npm installs for older hosts', () => {
    const imageMajor = /^NODE_IMAGE=node:(\d+)-/u.exec(instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_IMAGE='))?.args ?? '')?.[1];
    const manifest = JSON.parse(read('package.json')) as { engines: { node: string }; optionalDependencies: Record<string, string> };
    assert.equal(manifest.engines.node, `>=${imageMajor}`);
    const nodePackages = Object.entries(manifest.optionalDependencies).filter(([name]) => /^node-(linux|darwin|win)-/u.test(name));
    assert.ok(nodePackages.length > 0, 'optionalDependencies install a Node');
    for (const [name, range] of nodePackages) assert.match(range, new RegExp(`^\\^${imageMajor}\\.`, 'u'), name);
  });

  it('copies into the image only what .dockerignore lets into the build context', () => {
    const context = read('.dockerignore')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1));
    const copied = instructions
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/u).slice(0, -1));
    for (const path of copied) assert.ok(context.includes(path), `${path} is copied but not in the build context`);
  });
});

/** Values as compose gives them when the shell sets nothing: `${NAME:-default}` is the default. */
function withComposeDefaults(environment: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, value.replace(/^\$\{\w+:-(.*)\}$/u, '$1')]));
}

describe('docker-compose.yml', () => {
  it('builds the bot and the trainer from Dockerfile targets, with settings tunebot reads', () => {
    const known = settingVariables();
    const { bot, redis, trainer } = compose.services;
    assert.ok(bot && redis && trainer, `services: ${Object.keys(compose.services).join(', ')}`);
    assert.equal(bot.build?.args?.TARGET, 'cpu');
    assert.equal(trainer.build?.args?.TARGET, 'cuda');
    for (const service of [bot, trainer]) {
      for (const name of Object.keys(service.environment ?? {})) assert.ok(known.has(name), `${name} is not a tunebot setting`);
      loadConfig({ ...imageEnv, ...withComposeDefaults(service.environment ?? {}) });
      assert.ok(service.volumes?.includes('data:/data'), 'models live on the shared /data volume');
    }
    assert.equal(trainer.deploy?.resources?.reservations?.devices?.[0]?.driver, 'nvidia');
    assert.deepEqual(trainer.command, ['node', 'bin/tunebot.js', 'worker']);
  });

  it('publishes the local chat on loopback only: everyone who reaches it is an admin', () => {
    assert.deepEqual(compose.services.bot.ports, [`127.0.0.1:${imageEnv.TUNEBOT_LOCAL_PORT}:${imageEnv.TUNEBOT_LOCAL_PORT}`]);
  });
});
