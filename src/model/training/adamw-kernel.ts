/**
 * The AdamW update as a WebAssembly module with 128-bit SIMD, written out as bytes (no
 * toolchain: the module is one small function). In the WebAssembly text format:
 *
 *   (import "kernel" "memory" (memory 1))      ;; a bank of adamw.ts's: the arrays it updates
 *   (func (export "update")
 *     (param $p $m $v $g i32)                   ;; byte addresses of the four arrays (16-aligned)
 *     (param $count i32)                        ;; elements, a multiple of 4
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
 * 6 ns an element here; this kernel is under 1 ns). The arrays live in the module's memory,
 * so an update reads and writes each value once, where it lies.
 */

export interface AdamWKernel {
  readonly memory: WebAssembly.Memory;
  /**
   * Updates `count` (a multiple of 4) values of the arrays at byte addresses p, m, v and g of
   * the memory; the coefficients are adamw.ts's.
   */
  update(p: number, m: number, v: number, g: number, count: number, beta1: number, beta2: number, momentCoefficient: number,
    varianceCoefficient: number, stepSize: number, varianceScale: number, epsilon: number, decayFactor: number): void;
}

let compiled: WebAssembly.Module | undefined;

export function instantiateAdamWKernel(memory: WebAssembly.Memory): AdamWKernel {
  compiled ??= new WebAssembly.Module(adamwModuleBytes());
  const { exports } = new WebAssembly.Instance(compiled, { kernel: { memory } });
  return { memory, update: exports.update as AdamWKernel['update'] };
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
  const ADDRESS = { parameter: 0, moment: 1, variance: 2, gradient: 3 } as const;
  const COUNT = 4;
  const SCALARS = 8; // the f32 parameters 5..12, splatted into v128 locals 14..21
  const OFFSET = 13; // i32 byte offset from each array's address
  const SPLAT = 14;
  const [G, M, V] = [22, 23, 24];
  const [beta1, beta2, momentCoefficient, varianceCoefficient, stepSize, varianceScale, epsilon, decayFactor] =
    Array.from({ length: SCALARS }, (_, i) => localGet(SPLAT + i));
  const address = (array: keyof typeof ADDRESS) => [...localGet(ADDRESS[array]), ...localGet(OFFSET), I32_ADD];
  const load = (array: keyof typeof ADDRESS) => [...address(array), ...simd(V128_LOAD, ...memarg(0))];
  const store = (array: keyof typeof ADDRESS, value: number[]) => [...address(array), ...value, ...simd(V128_STORE, ...memarg(0))];

  const body = [
    ...Array.from({ length: SCALARS }, (_, i) => [...localGet(COUNT + 1 + i), ...simd(F32X4_SPLAT), ...localSet(SPLAT + i)]).flat(),
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
  const parameters = [...Array.from({ length: COUNT + 1 }, () => [I32]), ...Array.from({ length: SCALARS }, () => [F32])];

  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector(parameters), ...vector([])]])),
    ...section(2, vector([[...name('kernel'), ...name('memory'), 0x02, 0x00, ...unsigned(1)]])),
    ...section(3, vector([unsigned(0)])),
    ...section(7, vector([[...name('update'), 0x00, 0]])),
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
