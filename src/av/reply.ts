/**
 * clamd's reply to zINSTREAM (clamd(8), "INSTREAM"; ClamAV 1.4 as packaged by Debian):
 *
 *   stream: OK\0                                  clean
 *   stream: <signature> FOUND\0                   infected (our own signatures end in ".UNOFFICIAL")
 *   stream: Heuristics.Limits.Exceeded.<X> FOUND\0  past MaxFileSize/MaxScanSize/... with AlertExceedsMax yes
 *   INSTREAM size limit exceeded. ERROR\0         past StreamMaxLength (clamd closes the connection)
 *   <anything> ERROR\0                            clamd failed to scan
 *
 * With the "z" command prefix every reply ends in one NUL. An empty reply (clamd closed the connection) and
 * anything else are errors, never clean.
 */
import { CLEAN, notScanned, type ScanResult } from './result.js';

const STREAM_PREFIX = 'stream: ';
const OK = 'OK';
const FOUND_SUFFIX = ' FOUND';
const ERROR_SUFFIX = ' ERROR';
const SIZE_LIMIT_REPLY = 'INSTREAM size limit exceeded. ERROR';
/** clamd's name for "the object was past one of my scan limits" when AlertExceedsMax is set. */
export const LIMITS_EXCEEDED_PREFIX = 'Heuristics.Limits.Exceeded.';

/** Interprets one complete reply; `text` has its NUL terminator already removed. */
export function parseInstreamReply(text: string): ScanResult {
  if (text.length === 0) return notScanned('scanner_error', 'clamd closed the connection without a reply');
  if (text === SIZE_LIMIT_REPLY) return notScanned('size_limit', 'clamd: StreamMaxLength exceeded');
  if (text.startsWith(STREAM_PREFIX)) {
    const body = text.slice(STREAM_PREFIX.length);
    if (body === OK) return CLEAN;
    if (body.endsWith(FOUND_SUFFIX)) {
      const signature = body.slice(0, -FOUND_SUFFIX.length);
      if (signature.length === 0 || signature.includes(' ')) return notScanned('protocol_error', `malformed reply ${JSON.stringify(text)}`);
      if (signature.startsWith(LIMITS_EXCEEDED_PREFIX)) return notScanned('size_limit', `clamd: ${signature}`);
      return { kind: 'infected', signature };
    }
  }
  if (text.endsWith(ERROR_SUFFIX)) return notScanned('scanner_error', `clamd: ${text}`);
  return notScanned('protocol_error', `malformed reply ${JSON.stringify(text)}`);
}
