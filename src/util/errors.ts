/**
 * An error caused by what the user gave us (a path, a flag, a file's content),
 * as opposed to a bug. The CLI prints its message as one line, without a stack.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
