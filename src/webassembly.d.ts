/**
 * The part of the WebAssembly JavaScript API that tunebot uses (adamw-kernel.ts, adamw.ts). Node has
 * the global; @types/node does not declare it, and lib.dom would bring the browser's globals.
 */
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    /** initial and maximum in 64 KiB pages. */
    constructor(descriptor: { initial: number; maximum?: number });
    readonly buffer: ArrayBuffer;
  }
}
