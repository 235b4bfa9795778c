import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatBytes } from '../../src/byte-size.js';
import { createProgressBar } from '../../src/cli/progress.js';

describe('createProgressBar', () => {
  function fakeStream(isTTY: boolean): { isTTY: boolean; text: string; write(chunk: string): boolean } {
    return {
      isTTY,
      text: '',
      write(chunk) {
        this.text += chunk;
        return true;
      },
    };
  }

  test('formatBytes uses decimal units', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(12_345), '12.3 kB');
    assert.equal(formatBytes(27_300_000), '27.3 MB');
  });

  test('redraws one line on a TTY with rate and ETA', () => {
    const stream = fakeStream(true);
    let time = 0;
    const bar = createProgressBar('model.safetensors', 27_300_000, stream, { now: () => time });
    bar.update(0);
    time = 4000;
    bar.update(12_300_000);
    assert.ok(
      stream.text.endsWith('\rmodel.safetensors [#########...........] 45% 12.3/27.3 MB 3.1 MB/s ETA 5s\x1b[K'),
      JSON.stringify(stream.text),
    );
    bar.finish();
    assert.ok(stream.text.endsWith('\n'));
    assert.ok(!stream.text.slice(0, -1).includes('\n'));
  });

  test('writes a line per tenth, at most every two seconds, when not a TTY', () => {
    const stream = fakeStream(false);
    let time = 0;
    const bar = createProgressBar('train', 100, stream, { unit: 'count', now: () => time });
    for (let step = 0; step <= 100; step++) {
      time = step * 500;
      bar.update(step, `loss ${(3 - step / 50).toFixed(2)}`);
    }
    bar.finish();
    const lines = stream.text.trimEnd().split('\n');
    assert.ok(!stream.text.includes('\r'));
    assert.equal(lines.length, 11, stream.text);
    assert.match(lines[0], /^train \[\.{20}\] 0% 0\/100 loss 3\.00$/);
    assert.match(lines.at(-1) ?? '', /^train \[#{20}\] 100% 100\/100 2\.0\/s loss 1\.00$/);
  });
});
