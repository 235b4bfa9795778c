import assert from 'node:assert/strict';
import { ModelError } from '../../src/model/errors.js';

/** Asserts that `promise` rejects with a ModelError of `code` whose message matches. */
export async function rejectsWithModelError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}
