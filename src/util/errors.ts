/**
 * Exit codes, documented in the README: 0 ok, 1 failure, 2 bad input.
 * A UserError is bad input the user can fix (a file, a key, a value); its message says
 * which and what was expected. Anything else is a failure (exit 1).
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;

export class UserError extends Error {
  readonly exitCode = EXIT_BAD_INPUT;
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** The first line of a thrown error's message (or of the thrown value), trimmed. */
export function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0].trim();
}
