import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError } from '../../coded-error.js';
import { readConfig } from '../../model/files/model-files.js';

/** A version name that is not one, or a version that is not published. */
export class RegistryError extends CodedError<'REGISTRY'> {
  constructor(message: string) {
    super('REGISTRY', message);
  }
}

export interface ModelVersion {
  readonly version: string;
  readonly dir: string;
  readonly current: boolean;
  /** training.json's summary, when the version was fine-tuned here. */
  readonly training: unknown;
}

const POINTER = 'current';
const VERSION_PATTERN = /^v(\d+)$/;

/**
 * Model versions on disk (docs/architecture.md): `<root>/<version>/` folders and a `current`
 * file naming the live one. A version is published by renaming a finished folder into place and
 * is never modified; switching and rolling back only rewrite the pointer, atomically.
 */
export class ModelRegistry {
  constructor(readonly root: string) {}

  async versions(): Promise<ModelVersion[]> {
    const current = await this.currentVersion();
    const names = await this.versionNames();
    return Promise.all(
      names.map(async (version) => ({
        version,
        dir: this.dirOf(version),
        current: version === current,
        training: await readFile(join(this.dirOf(version), 'training.json'), 'utf8').then(JSON.parse, () => null),
      })),
    );
  }

  /** The live version, or null before the first publish. */
  async currentVersion(): Promise<string | null> {
    const text = await readFile(join(this.root, POINTER), 'utf8').catch(() => null);
    return text?.trim() || null;
  }

  async currentDir(): Promise<string | null> {
    const version = await this.currentVersion();
    return version ? this.dirOf(version) : null;
  }

  dirOf(version: string): string {
    if (!VERSION_PATTERN.test(version)) throw new RegistryError(`"${version}" is not a version name (v1, v2, ...)`);
    return join(this.root, version);
  }

  /** A folder for the next version to be written into; publish it with `publish`. */
  async nextVersion(): Promise<string> {
    const numbers = (await this.versionNames()).map((name) => Number(VERSION_PATTERN.exec(name)?.[1]));
    return `v${Math.max(0, ...numbers) + 1}`;
  }

  /** Moves a finished model folder in as `version` (not yet live). */
  async publish(finishedDir: string, version: string): Promise<string> {
    await readConfig(finishedDir); // refuse a folder that is not a model
    await mkdir(this.root, { recursive: true });
    const target = this.dirOf(version);
    await rename(finishedDir, target);
    return target;
  }

  /** Makes `version` live (a rollback is the same call with an older version). */
  async use(version: string): Promise<void> {
    await this.requireVersion(version);
    const temp = join(this.root, `.${POINTER}-${randomBytes(4).toString('hex')}`);
    await writeFile(temp, `${version}\n`);
    await rename(temp, join(this.root, POINTER));
  }

  /** Throws, listing the versions, when `version` is not published. */
  async requireVersion(version: string): Promise<void> {
    const names = await this.versionNames();
    if (!names.includes(version)) {
      throw new RegistryError(`there is no version ${version}; the versions are ${names.join(', ') || '(none yet)'}`);
    }
  }

  private async versionNames(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((entry) => entry.isDirectory() && VERSION_PATTERN.test(entry.name))
      .map((entry) => entry.name)
      .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  }
}
