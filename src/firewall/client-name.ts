/**
 * Which name does the client ask for? Dispatches the client's first bytes to the TLS ClientHello reader (a TLS
 * record starts with content type 22) or the HTTP/1.x request reader (an upper-case method token), and says
 * which of the two it was, because rules match `sni`, `http_host` or either (`domain`).
 */
import { NAME_RESULT, type NameResult } from './client-name-result.js';
import { createHttpHead, looksLikeHttp, parseHttpHost, type HttpHead } from './http-host.js';
import { parseTlsClientHello, TLS_CONTENT_HANDSHAKE, type NameOut } from './tls-sni.js';

export const NAME_SOURCE = { NONE: 0, TLS: 1, HTTP: 2 } as const;
export type NameSource = (typeof NAME_SOURCE)[keyof typeof NAME_SOURCE];

export interface ClientNameOut extends NameOut {
  source: NameSource;
  /** For HTTP: the request head's length and body framing (for reading the requests that follow). */
  head: HttpHead;
}

export function createClientNameOut(): ClientNameOut {
  return { name: '', source: NAME_SOURCE.NONE, head: createHttpHead() };
}

/** Reads buf[off, off+len); `scratch` (the byte budget) holds TLS handshake bytes spread over several records. */
export function readClientName(buf: Uint8Array, off: number, len: number, scratch: Uint8Array, out: ClientNameOut): NameResult {
  out.source = NAME_SOURCE.NONE;
  if (len === 0) return NAME_RESULT.NEED_MORE;
  if (buf[off] === TLS_CONTENT_HANDSHAKE) {
    out.source = NAME_SOURCE.TLS;
    return parseTlsClientHello(buf, off, len, scratch, out);
  }
  const h = looksLikeHttp(buf, off, len);
  if (h === NAME_RESULT.NOT_THIS_PROTOCOL) return NAME_RESULT.NOT_THIS_PROTOCOL;
  out.source = NAME_SOURCE.HTTP;
  if (h === NAME_RESULT.NEED_MORE) return NAME_RESULT.NEED_MORE;
  return parseHttpHost(buf, off, len, out, out.head);
}

export { NAME_RESULT, type NameResult };
