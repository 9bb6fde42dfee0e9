/**
 * One-shot clamd commands (zPING, zVERSION; clamd(8)) with one deadline over connect and reply that destroys
 * the socket. The reply is NUL-terminated; an empty reply or one without the NUL is an error.
 */
import { createConnection } from 'node:net';
import type { ClamdAddress } from './address.js';
import { MAX_REPLY_BYTES } from './instream.js';
import type { NotScannedReason } from './result.js';

export class ClamdCommandError extends Error {
  readonly code = 'GWI_ERR_CLAMD_COMMAND';
  constructor(
    message: string,
    /** The scan outcome this failure maps to. */
    readonly reason: Exclude<NotScannedReason, 'size_limit' | 'overloaded'>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ClamdCommandError';
  }
}

/** Sends `command` (e.g. "zPING\0") and resolves with the reply without its NUL. */
export function clamdCommand(address: ClamdAddress, command: string, deadlineMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = address.kind === 'unix' ? createConnection({ path: address.path }) : createConnection({ host: address.host, port: address.port });
    let connected = false;
    let done = false;
    const parts: Buffer[] = [];
    let bytes = 0;
    const fail = (err: ClamdCommandError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new ClamdCommandError(`clamd did not answer ${JSON.stringify(command)} within ${deadlineMs} ms`, connected ? 'timeout' : 'unreachable'));
    }, deadlineMs);
    s.once('connect', () => {
      connected = true;
      s.write(command);
    });
    s.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes > MAX_REPLY_BYTES) return fail(new ClamdCommandError(`reply longer than ${MAX_REPLY_BYTES} bytes`, 'protocol_error'));
      parts.push(d);
      if (d.indexOf(0) < 0 || done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const all = Buffer.concat(parts);
      resolve(all.toString('latin1', 0, all.indexOf(0)));
    });
    s.on('end', () => {
      fail(
        bytes === 0
          ? new ClamdCommandError('clamd closed the connection without a reply', 'scanner_error')
          : new ClamdCommandError('reply without NUL terminator', 'protocol_error'),
      );
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      fail(new ClamdCommandError(`clamd: ${err.code ?? err.message}`, connected ? 'scanner_error' : 'unreachable', { cause: err }));
    });
    s.on('close', () => fail(new ClamdCommandError('connection to clamd closed without a reply', 'scanner_error')));
  });
}
