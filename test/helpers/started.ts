import type { Adapter } from '../../src/core/conversation/adapter.js';

/** `adapter`, once its start() has resolved. */
export async function started<A extends Adapter>(adapter: A): Promise<A> {
  await adapter.start();
  return adapter;
}
