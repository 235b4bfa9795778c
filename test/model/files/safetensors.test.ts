import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelError } from '../../../src/model/errors.js';
import { readSafetensors, writeSafetensors } from '../../../src/model/files/safetensors.js';
import type { WeightMap } from '../../../src/model/tensor.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tunebot-safetensors-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file built by hand per the format: u64 LE header length, space-padded JSON, data bytes. */
function safetensorsBytes(header: unknown, data: Uint8Array, headerLength?: number): Buffer {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerLength ?? json.length));
  return Buffer.concat([length, Buffer.from(json, 'utf8'), data]);
}

function u16le(values: number[]): Uint8Array {
  const bytes = Buffer.alloc(values.length * 2);
  values.forEach((value, i) => bytes.writeUInt16LE(value, i * 2));
  return bytes;
}

async function assertCorrupt(name: string, bytes: Uint8Array, phrase: RegExp): Promise<void> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  await assert.rejects(readSafetensors(path), (error: unknown) => {
    assert.ok(error instanceof ModelError);
    assert.equal(error.code, 'MODEL_CORRUPT');
    assert.ok(error.message.includes(path), `message names the file: ${error.message}`);
    assert.match(error.message, phrase);
    return true;
  });
}

describe('safetensors', () => {
  it('round-trips tensors of every rank, empty ones included, and the metadata', async () => {
    const tensors: WeightMap = new Map([
      ['matrix', { dims: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-30, -0, 6e20]) }],
      ['scalar', { dims: [], data: Float32Array.from([42]) }],
      ['empty', { dims: [0], data: new Float32Array(0) }],
      ['hollow', { dims: [3, 0, 2], data: new Float32Array(0) }],
      ['odd', { dims: [1, 1, 5], data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5]) }],
      ['special', { dims: [3], data: Float32Array.from([Infinity, -Infinity, NaN]) }],
    ]);
    const path = join(dir, 'round-trip.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt', note: 'é ünïcode' });

    const read = await readSafetensors(path);
    assert.deepEqual(read.metadata, { format: 'pt', note: 'é ünïcode' });
    assert.deepEqual([...read.tensors.keys()], [...tensors.keys()]);
    for (const [name, tensor] of tensors) {
      const got = read.tensors.get(name)!;
      assert.deepEqual(got.dims, tensor.dims, name);
      assert.deepEqual(got.data, tensor.data, name);
    }
    // F32 tensors are views into one buffer, not copies.
    assert.equal(read.tensors.get('matrix')!.data.buffer, read.tensors.get('odd')!.data.buffer);
  });

  it('writes the header byte for byte as the format prescribes', async () => {
    const path = join(dir, 'exact.safetensors');
    await writeSafetensors(path, new Map([['w', { dims: [2], data: Float32Array.from([1.5, -2]) }]]), { format: 'pt' });
    const json = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    assert.equal(json.length, 85);
    const expected = Buffer.concat([
      Buffer.from([88, 0, 0, 0, 0, 0, 0, 0]), // 85 padded to 88
      Buffer.from(json + '   ', 'utf8'),
      Buffer.from([0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0]), // 1.5, -2 as float32 LE
    ]);
    assert.deepEqual(await readFile(path), expected);
  });

  it('omits __metadata__ when there is none', async () => {
    const path = join(dir, 'no-metadata.safetensors');
    await writeSafetensors(path, new Map([['w', { dims: [1], data: Float32Array.from([1]) }]]));
    const bytes = await readFile(path);
    assert.ok(!bytes.toString('utf8').includes('__metadata__'));
    assert.deepEqual((await readSafetensors(path)).metadata, {});
  });

  it('reads a hand-written file with F16, BF16 and F32 tensors, converting to float32', async () => {
    const half = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x7c00, 0xfc00, 0x8000];
    const brain = [0x3f80, 0xc049, 0x7f80];
    const data = Buffer.concat([u16le(half), u16le(brain), u16le([0]), Buffer.from(Float32Array.from([0.25]).buffer)]);
    const header = {
      __metadata__: { source: 'hand' },
      h: { dtype: 'F16', shape: [2, 4], data_offsets: [0, 16] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [16, 22] },
      z: { dtype: 'BF16', shape: [1, 1], data_offsets: [22, 24] },
      f: { dtype: 'F32', shape: [1], data_offsets: [24, 28] },
    };
    const path = join(dir, 'hand.safetensors');
    await writeFile(path, safetensorsBytes(header, data));

    const { tensors, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, { source: 'hand' });
    assert.deepEqual(tensors.get('h')!.dims, [2, 4]);
    assert.deepEqual(
      [...tensors.get('h')!.data],
      [1, -2, 65504, 2 ** -24, Math.fround(0.333251953125), Infinity, -Infinity, -0],
    );
    assert.deepEqual([...tensors.get('b')!.data], [1, -3.140625, Infinity]);
    assert.deepEqual([...tensors.get('z')!.data], [0]);
    assert.deepEqual([...tensors.get('f')!.data], [0.25]);
  });

  it('reads an F16 NaN as NaN', async () => {
    const path = join(dir, 'nan.safetensors');
    await writeFile(path, safetensorsBytes({ n: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, u16le([0x7e00])));
    assert.ok(Number.isNaN((await readSafetensors(path)).tensors.get('n')!.data[0]));
  });

  describe('rejects corrupt files with MODEL_CORRUPT', () => {
    const four = Buffer.from(Float32Array.from([1, 2, 3, 4]).buffer);
    const entry = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

    it('a file shorter than the length prefix', async () => {
      await assertCorrupt('tiny.safetensors', Buffer.from([1, 0, 0]), /shorter than the 8-byte header length/);
    });

    it('a header length beyond the file', async () => {
      const bytes = safetensorsBytes({ a: entry(0, 16) }, four, 1_000_000);
      await assertCorrupt('long-header.safetensors', bytes, /header length 1000000 exceeds/);
    });

    it('a truncated data section', async () => {
      const path = join(dir, 'cut.safetensors');
      await writeSafetensors(path, new Map([['a', { dims: [4], data: Float32Array.from([1, 2, 3, 4]) }]]));
      await truncate(path, (await readFile(path)).length - 4);
      await assertCorrupt('cut.safetensors', await readFile(path), /data_offsets \[0, 16\] outside the 12 data bytes/);
    });

    it('a header that is not JSON', async () => {
      const json = Buffer.from('{"a": {"dtype": "F32",', 'utf8');
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(json.length));
      await assertCorrupt('bad-json.safetensors', Buffer.concat([length, json, four]), /header is not valid JSON/);
    });

    it('a header that is JSON but not an object', async () => {
      await assertCorrupt('array.safetensors', safetensorsBytes([1, 2], four), /header is not a JSON object/);
    });

    it('overlapping tensors', async () => {
      const bytes = safetensorsBytes({ a: entry(0, 12), b: entry(8, 16) }, four);
      await assertCorrupt('overlap.safetensors', bytes, /tensors a and b overlap/);
    });

    it('a byte length that does not match dtype and shape', async () => {
      const bytes = safetensorsBytes({ a: entry(0, 16, [3]) }, four);
      await assertCorrupt('wrong-length.safetensors', bytes, /spans 16 bytes but F32 \[3\] needs 12/);
    });

    it('bytes that belong to no tensor', async () => {
      const bytes = safetensorsBytes({ a: entry(4, 16) }, four);
      await assertCorrupt('hole.safetensors', bytes, /bytes 0\.\.4 of the data belong to no tensor/);
    });

    it('an unsupported dtype', async () => {
      const bytes = safetensorsBytes({ a: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, four);
      await assertCorrupt('int.safetensors', bytes, /tensor a has dtype I64; only F32, F16, BF16/);
    });

    it('an unknown dtype', async () => {
      const bytes = safetensorsBytes({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 16] } }, four);
      await assertCorrupt('unknown.safetensors', bytes, /unknown dtype "Q4"/);
    });

    it('a malformed shape or offsets', async () => {
      await assertCorrupt('shape.safetensors', safetensorsBytes({ a: entry(0, 16, [-4]) }, four), /expected an array of non-negative integers/);
      const offsets = safetensorsBytes({ a: { dtype: 'F32', shape: [4], data_offsets: [0] } }, four);
      await assertCorrupt('offsets.safetensors', offsets, /expected \[begin, end\]/);
    });

    it('non-string metadata', async () => {
      const bytes = safetensorsBytes({ __metadata__: { step: 3 }, a: entry(0, 16) }, four);
      await assertCorrupt('metadata.safetensors', bytes, /__metadata__\.step is not a string/);
    });
  });

  it('reports a missing file as MODEL_NOT_FOUND', async () => {
    await assert.rejects(readSafetensors(join(dir, 'absent.safetensors')), { code: 'MODEL_NOT_FOUND' });
  });

  it('refuses to write a tensor whose data does not fill its shape', async () => {
    const tensors: WeightMap = new Map([['a', { dims: [2, 2], data: new Float32Array(3) }]]);
    await assert.rejects(writeSafetensors(join(dir, 'short.safetensors'), tensors), {
      code: 'WEIGHTS_MISMATCH',
      message: /tensor a holds 3 values for shape \[2,2\]/,
    });
  });
});
