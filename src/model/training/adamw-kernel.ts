/**
 * The AdamW update as a WebAssembly module with 128-bit SIMD, written out as bytes (no
 * toolchain: the module is one small function). In the WebAssembly text format:
 *
 *   (memory (export "memory") 4)               ;; four regions of CHUNK floats: p, m, v, g
 *   (func (export "update") (param $count i32)  ;; elements, a multiple of 4
 *     (param $beta1 $beta2 $momentCoefficient $varianceCoefficient
 *            $stepSize $varianceScale $epsilon $decayFactor f32)   ;; each f32x4.splat
 *     for each four elements at byte offset $o (the lanes of an f32x4):
 *       g = g[$o]
 *       m[$o] = beta1 * m[$o] + momentCoefficient * g
 *       v[$o] = beta2 * v[$o] + varianceCoefficient * g * g
 *       p[$o] = p[$o] * decayFactor - (stepSize * m) / (sqrt(v * varianceScale) + epsilon))
 *
 * float32 arithmetic, as PyTorch's AdamW does it on float32 parameters: four lanes at a time
 * take a fourth of the divisions and square roots that bound a scalar float64 loop (about
 * 6 ns an element here; this kernel is under 1 ns).
 */

/**
 * Elements of each region: 4 x 16384 float32 are 256 KiB, four 64 KiB pages, which stay in a
 * core's L2 cache between the copy in, the update and the copy out (4096 took 7% longer).
 */
export const CHUNK = 16384;
const REGION_BYTES = CHUNK * 4;
const PAGES = (4 * REGION_BYTES) / 65536;
const REGIONS = { parameter: 0, moment: 1, variance: 2, gradient: 3 } as const;
export type Region = keyof typeof REGIONS;

export interface AdamWKernel {
  /** The module's memory, one Float32Array of CHUNK values per region. */
  readonly regions: Readonly<Record<Region, Float32Array>>;
  /** Updates the first `count` (a multiple of 4) values of the regions; the coefficients are adamw.ts's. */
  update(count: number, beta1: number, beta2: number, momentCoefficient: number, varianceCoefficient: number,
    stepSize: number, varianceScale: number, epsilon: number, decayFactor: number): void;
}

export function instantiateAdamWKernel(): AdamWKernel {
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(adamwModuleBytes()));
  const { memory, update } = exports as { memory: WebAssembly.Memory; update: AdamWKernel['update'] };
  const view = (region: Region) => new Float32Array(memory.buffer, REGIONS[region] * REGION_BYTES, CHUNK);
  return { update, regions: { parameter: view('parameter'), moment: view('moment'), variance: view('variance'), gradient: view('gradient') } };
}

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

// Instructions (WebAssembly core and SIMD specifications).
const localGet = (index: number) => [0x20, ...unsigned(index)];
const localSet = (index: number) => [0x21, ...unsigned(index)];
const simd = (opcode: number, ...immediates: number[]) => [0xfd, ...unsigned(opcode), ...immediates];
/** memarg: alignment 2^4 (16 bytes), then the constant offset added to the address. */
const memarg = (offset: number) => [4, ...unsigned(offset)];
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_SHL = 0x74;
const I32_GE_U = 0x4f;
const V128_LOAD = 0x00;
const V128_STORE = 0x0b;
const F32X4_SPLAT = 0x13;
const F32X4_SQRT = 0xe3;
const F32X4_ADD = 0xe4;
const F32X4_SUB = 0xe5;
const F32X4_MUL = 0xe6;
const F32X4_DIV = 0xe7;

function adamwModuleBytes(): Uint8Array {
  const COUNT = 0;
  const SCALARS = 8; // the f32 parameters 1..8, splatted into v128 locals 10..17
  const OFFSET = 9; // i32 byte offset
  const SPLAT = 10;
  const [G, M, V] = [18, 19, 20];
  const [beta1, beta2, momentCoefficient, varianceCoefficient, stepSize, varianceScale, epsilon, decayFactor] =
    Array.from({ length: SCALARS }, (_, i) => localGet(SPLAT + i));
  const region = (name: Region) => REGIONS[name] * REGION_BYTES;
  const load = (name: Region) => [...localGet(OFFSET), ...simd(V128_LOAD, ...memarg(region(name)))];
  const store = (name: Region, value: number[]) => [
    ...localGet(OFFSET), ...value, ...simd(V128_STORE, ...memarg(region(name))),
  ];

  const body = [
    ...Array.from({ length: SCALARS }, (_, i) => [...localGet(1 + i), ...simd(F32X4_SPLAT), ...localSet(SPLAT + i)]).flat(),
    0x02, 0x40, // block
    0x03, 0x40, // loop
    ...localGet(OFFSET), ...localGet(COUNT), I32_CONST, 2, I32_SHL, I32_GE_U, 0x0d, 1, // br_if 1 (exit) when offset >= count << 2
    ...load('gradient'), ...localSet(G),
    ...beta1, ...load('moment'), ...simd(F32X4_MUL), ...momentCoefficient, ...localGet(G), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...localSet(M),
    ...beta2, ...load('variance'), ...simd(F32X4_MUL), ...varianceCoefficient, ...localGet(G), ...simd(F32X4_MUL), ...localGet(G), ...simd(F32X4_MUL),
    ...simd(F32X4_ADD), ...localSet(V),
    ...store('moment', localGet(M)),
    ...store('variance', localGet(V)),
    ...store('parameter', [
      ...load('parameter'), ...decayFactor, ...simd(F32X4_MUL),
      ...stepSize, ...localGet(M), ...simd(F32X4_MUL),
      ...localGet(V), ...varianceScale, ...simd(F32X4_MUL), ...simd(F32X4_SQRT), ...epsilon, ...simd(F32X4_ADD),
      ...simd(F32X4_DIV), ...simd(F32X4_SUB),
    ]),
    ...localGet(OFFSET), I32_CONST, 16, I32_ADD, ...localSet(OFFSET), // offset += 16 (four float32)
    0x0c, 0, // br 0 (next four)
    0x0b, // end loop
    0x0b, // end block
    0x0b, // end function
  ];
  const locals = [...vector([[1, I32], [SCALARS + 3, V128]].map(([count, type]) => [...unsigned(count), type]))];
  const code = [...locals, ...body];

  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector([[I32], ...Array.from({ length: SCALARS }, () => [F32])]), ...vector([])]])),
    ...section(3, vector([unsigned(0)])),
    ...section(5, vector([[0x00, ...unsigned(PAGES)]])),
    ...section(7, vector([[...name('memory'), 0x02, 0], [...name('update'), 0x00, 0]])),
    ...section(10, vector([[...unsigned(code.length), ...code]])),
  ]);
}

function unsigned(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

const vector = (items: readonly (readonly number[])[]) => [...unsigned(items.length), ...items.flat()];
const section = (id: number, contents: readonly number[]) => [id, ...unsigned(contents.length), ...contents];
const name = (text: string) => vector([...new TextEncoder().encode(text)].map((byte) => [byte]));
