import { CodedError } from '../../coded-error.js';

/**
 * What a user is told when handling their message failed. A coded error is an expected
 * failure whose message was written for them (an FAQ file with a bad line, a version that does
 * not exist, a store that is down); anything else is a bug, whose message means nothing to them
 * and may show internals: it is logged where it was caught, and they get a generic reply.
 */
export const SOMETHING_WENT_WRONG = 'Sorry, something went wrong while answering. Please try again later.';

export function errorReply(error: unknown): string {
  return error instanceof CodedError ? `Could not do that: ${error.message}` : SOMETHING_WENT_WRONG;
}
