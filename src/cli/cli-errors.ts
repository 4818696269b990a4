/**
 * Errors a user can fix, each with the exit status it ends the process with. main.ts prints their
 * message as one line, without a stack trace; anything else is an internal error.
 */

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** The command line itself is wrong (unknown option, bad value, missing option): exit status 2. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, 2);
  }
}

/** The command line is fine but the data is not (missing or malformed file, NaN in the tensor): exit status 1. */
export class InputError extends CliError {
  override name = 'InputError';
  constructor(message: string) {
    super(message, 1);
  }
}
