import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { envName, loadConfig } from '../src/core/config.js';

/**
 * docs/architecture.md against the code it describes: a file that moves, or a setting that is
 * renamed, fails here until the page follows.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const doc = readFileSync(new URL('../docs/architecture.md', import.meta.url), 'utf8');

/** A leaf setting's value in the default configuration, or undefined when there is no such path. */
function setting(path: string): unknown {
  let value: unknown = loadConfig({});
  for (const key of path.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

describe('docs/architecture.md', () => {
  it('names only source files and folders that exist', () => {
    const paths = [...doc.matchAll(/`((?:src\/)?(?:core|model|adapters|cli)\/[\w./-]+|(?:docs|config|test|bench)\/[\w./-]+)`/gu)].map((match) => match[1]);
    assert.ok(paths.length > 30, `the page names the files it describes (${paths.length})`);
    const missing = paths.filter((path) => !existsSync(`${root}/${/^(docs|config|test|bench|src)\//u.test(path) ? path : `src/${path}`}`));
    assert.deepEqual(missing, []);
  });

  it('names only settings that exist', () => {
    const settings = [...doc.matchAll(/`((?:engine|model|fineTune|storage|retrieval|discord|slack|faq|ops|local)\.[a-zA-Z.]+)`/gu)].map((match) => match[1]);
    assert.ok(settings.length > 10, `the page names settings (${settings.length})`);
    assert.deepEqual(settings.filter((path) => setting(path) === undefined).map((path) => `${path} (${envName(path.split('.'))})`), []);
  });

  it('is where the README points for the architecture', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    assert.match(readme, /\[docs\/architecture\.md\]\(docs\/architecture\.md\)/u);
    assert.doesNotMatch(readme, /shared\/DESIGN\.md/u);
  });
});
