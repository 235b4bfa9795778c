import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

/**
 * ONNX Runtime lives behind src/model/runtime/session.ts (sessions, and feeds through feedTensor):
 * no other file under src/ may load onnxruntime-node, by a static import, an export-from,
 * a dynamic import() or a require().
 */
const SRC = join(import.meta.dirname, '..', '..', 'src');
const SESSION_MODULE = 'model/runtime/session.ts';

const LOADS_ONNX_RUNTIME = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"`]onnxruntime-(?:node|common|web)(?:\/[^'"`]*)?['"`]/m;

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile() && /\.[cm]?[tj]sx?$/.test(entry.name)).map((entry) => join(entry.parentPath, entry.name));
}

describe('ONNX Runtime boundary', () => {
  it('the pattern catches every way of loading onnxruntime-node, and not the package name elsewhere', () => {
    const loads = [
      "import * as ort from 'onnxruntime-node';",
      'import { InferenceSession } from "onnxruntime-node";',
      "import type { Tensor } from 'onnxruntime-common';",
      "export { Tensor } from 'onnxruntime-node';",
      "const ort = await import('onnxruntime-node');",
      "const ort = require( 'onnxruntime-node' );",
      "import 'onnxruntime-node';",
      "import { x } from 'onnxruntime-node/dist/index.js';",
    ];
    for (const line of loads) assert.match(line, LOADS_ONNX_RUNTIME, line);
    const mentions = [
      "// install onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12",
      "createRequire(import.meta.url).resolve('onnxruntime-node')",
      "import { feedTensor } from './session.js';",
    ];
    for (const line of mentions) assert.doesNotMatch(line, LOADS_ONNX_RUNTIME, line);
  });

  it(`only src/${SESSION_MODULE} loads onnxruntime-node`, async () => {
    const files = await sourceFiles(SRC);
    assert.ok(files.length > 50, `found only ${files.length} source files under ${SRC}`);
    const loaders: string[] = [];
    for (const file of files) {
      if (LOADS_ONNX_RUNTIME.test(await readFile(file, 'utf8'))) loaders.push(relative(SRC, file));
    }
    assert.deepEqual(loaders, [SESSION_MODULE], 'ONNX Runtime belongs behind src/model/runtime/session.ts: build feeds with feedTensor and run them through ModelSession');
  });
});
