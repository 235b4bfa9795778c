/**
 * An error with a stable code, so callers branch on the code rather than the message. Each
 * layer names its codes and subclasses this once (ModelError, StorageError, ...).
 */
export class CodedError<Code extends string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
