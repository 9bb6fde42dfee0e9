/**
 * The target host of an HTTP/1.x request, read from the request head a client sends first (RFC 9112).
 *
 *   request-line = method SP request-target SP HTTP-version CRLF        (RFC 9112 §3)
 *   field-line   = field-name ":" OWS field-value OWS                    (RFC 9112 §5)
 *   the head ends at an empty line.
 *
 * The name is what the origin server will act on, read the way a strict server does, so that the firewall and the
 * server cannot disagree:
 *   - absolute-form targets (`GET http://host/ ...`, proxies) and CONNECT's authority-form name the host; RFC 9112
 *     §3.2.2: "When a proxy receives a request with an absolute-form of request-target, the proxy MUST ignore the
 *     received Host header field (if any) and instead replace it with the host information of the request-target."
 *     A Host header that disagrees with such a target is refused (MALFORMED) rather than guessed at.
 *   - RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request message that
 *     lacks a Host header field and to any request message that contains more than one Host header field line or a
 *     Host header field with an invalid field value." → two Host lines: MALFORMED.
 *   - RFC 9112 §5.1: "No whitespace is allowed between the field name and colon." → MALFORMED.
 *   - RFC 9112 §5.2: obsolete line folding → MALFORMED.
 * Lines may end in CRLF or a bare LF (RFC 9112 §2.2 lets recipients accept a bare LF; common servers do).
 */
import { NAME_RESULT, type NameResult } from './client-name-result.js';
import { hostName, type NameOut } from './tls-sni.js';

const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
/** Longest method token we wait for before deciding this is not HTTP (the registered methods are ≤ 17). */
const MAX_METHOD_BYTES = 24;
const HOST = [0x68, 0x6f, 0x73, 0x74]; // "host"

function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}

/** RFC 9110 §5.6.2 tchar. */
function isTchar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x21 || c === 0x23 || c === 0x24 || c === 0x25 || c === 0x26 || c === 0x27 || c === 0x2a ||
    c === 0x2b || c === 0x2d || c === 0x2e || c === 0x5e || c === 0x5f || c === 0x60 || c === 0x7c || c === 0x7e
  );
}

/** Does buf[off, off+len) start like an HTTP/1.x request (an upper-case method token and a space)? */
export function looksLikeHttp(buf: Uint8Array, off: number, len: number): NameResult {
  const n = Math.min(len, MAX_METHOD_BYTES + 1);
  for (let i = 0; i < n; i++) {
    const c = buf[off + i]!;
    if (c === SP) return i > 0 ? NAME_RESULT.FOUND : NAME_RESULT.NOT_THIS_PROTOCOL;
    if (!isUpper(c)) return NAME_RESULT.NOT_THIS_PROTOCOL;
  }
  return len > MAX_METHOD_BYTES ? NAME_RESULT.NOT_THIS_PROTOCOL : NAME_RESULT.NEED_MORE;
}

/** How the request whose head was parsed is framed (RFC 9112 §6), so a reader can find the next request. */
export const HTTP_BODY = {
  /** No body: the next request starts right after the head. */
  NONE: 0,
  /** Content-Length bytes follow. */
  LENGTH: 1,
  /** Transfer-Encoding: chunked. */
  CHUNKED: 2,
} as const;

export interface HttpHead {
  /** Bytes of the head, empty line included (set when the head is complete). */
  headBytes: number;
  body: number;
  /** Content-Length when body is LENGTH. */
  bodyBytes: number;
  /** CONNECT, or an Upgrade header field: what follows on the connection may not be HTTP. */
  opaqueAfter: boolean;
}

export function createHttpHead(): HttpHead {
  return { headBytes: 0, body: HTTP_BODY.NONE, bodyBytes: 0, opaqueAfter: false };
}

/** Longest Content-Length value read, digits (2^53 > 10^15). */
const MAX_CONTENT_LENGTH_DIGITS = 15;
const CONTENT_LENGTH = 'content-length';
const TRANSFER_ENCODING = 'transfer-encoding';
const UPGRADE = 'upgrade';

/**
 * Parses the request head in buf[off, off + len); FOUND sets out.name (lower case, no port, no trailing dot).
 * With `head`, a complete head also reports its length and body framing (ABSENT and FOUND); framing a strict
 * server refuses is MALFORMED, never guessed: RFC 9112 §6.3: "If a message is received with both a
 * Transfer-Encoding and a Content-Length header field, the Transfer-Encoding overrides the Content-Length. Such a
 * message might indicate an attempt to perform request smuggling" (refused here); "If a Transfer-Encoding header
 * field is present in a request and the chunked transfer coding is not the final encoding, the message body length
 * cannot be determined reliably; the server MUST respond with the 400 (Bad Request) status code"; an invalid or
 * repeated Content-Length is refused likewise.
 */
export function parseHttpHost(buf: Uint8Array, off: number, len: number, out: NameOut, head?: HttpHead): NameResult {
  const start = looksLikeHttp(buf, off, len);
  if (start !== NAME_RESULT.FOUND) return start;
  const end = off + len;

  // Request line.
  const lineEnd = findLf(buf, off, end);
  if (lineEnd < 0) return NAME_RESULT.NEED_MORE;
  const rl = trimCr(buf, off, lineEnd);
  const sp1 = indexOf(buf, off, rl, SP);
  const sp2 = sp1 < 0 ? -1 : indexOf(buf, sp1 + 1, rl, SP);
  if (sp1 < 0 || sp2 < 0 || indexOf(buf, sp2 + 1, rl, SP) >= 0) return NAME_RESULT.MALFORMED;
  // HTTP-version = "HTTP/" DIGIT "." DIGIT, and only 1.x here (HTTP/2 prior knowledge is "PRI * HTTP/2.0").
  if (rl - (sp2 + 1) !== 8 || !startsWith(buf, sp2 + 1, 'HTTP/1.')) return NAME_RESULT.NOT_THIS_PROTOCOL;
  const isConnect = sp1 - off === 7 && startsWith(buf, off, 'CONNECT');
  let targetHost: string | undefined;
  const tStart = sp1 + 1;
  if (isConnect) {
    targetHost = authorityHost(buf, tStart, sp2);
    if (targetHost === undefined) return NAME_RESULT.MALFORMED;
  } else if (startsWithCi(buf, tStart, sp2, 'http://') || startsWithCi(buf, tStart, sp2, 'https://')) {
    const aStart = tStart + (startsWithCi(buf, tStart, sp2, 'http://') ? 7 : 8);
    let aEnd = aStart;
    while (aEnd < sp2 && buf[aEnd] !== 0x2f && buf[aEnd] !== 0x3f && buf[aEnd] !== 0x23) aEnd++;
    targetHost = authorityHost(buf, aStart, aEnd);
    if (targetHost === undefined) return NAME_RESULT.MALFORMED;
  }

  // Header fields, until the empty line.
  let p = lineEnd + 1;
  let host: string | undefined;
  let hostLines = 0;
  let contentLength = -1;
  let chunked = false;
  let teLines = 0;
  let upgrade = false;
  for (;;) {
    const le = findLf(buf, p, end);
    if (le < 0) return NAME_RESULT.NEED_MORE;
    const e = trimCr(buf, p, le);
    if (e === p) {
      // empty line: end of the head
      if (head !== undefined) {
        head.headBytes = le + 1 - off;
        head.opaqueAfter = isConnect || upgrade;
        head.bodyBytes = 0;
        head.body = HTTP_BODY.NONE;
        if (teLines > 0) {
          if (contentLength >= 0 || !chunked) return NAME_RESULT.MALFORMED;
          head.body = HTTP_BODY.CHUNKED;
        } else if (contentLength > 0) {
          head.body = HTTP_BODY.LENGTH;
          head.bodyBytes = contentLength;
        }
      }
      break;
    }
    const c0 = buf[p]!;
    if (c0 === SP || c0 === HTAB) return NAME_RESULT.MALFORMED; // obs-fold
    const colon = indexOf(buf, p, e, COLON);
    if (colon <= p) return NAME_RESULT.MALFORMED;
    for (let i = p; i < colon; i++) if (!isTchar(buf[i]!)) return NAME_RESULT.MALFORMED;
    if (colon - p === 4 && equalsCi(buf, p, HOST)) {
      hostLines++;
      if (hostLines > 1) return NAME_RESULT.MALFORMED;
      let vs = colon + 1;
      let ve = e;
      while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
      while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
      if (ve > vs) {
        host = authorityHost(buf, vs, ve);
        if (host === undefined) return NAME_RESULT.MALFORMED;
      }
    } else if (head !== undefined) {
      let vs = colon + 1;
      let ve = e;
      while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
      while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
      if (colon - p === CONTENT_LENGTH.length && equalsCiText(buf, p, CONTENT_LENGTH)) {
        if (contentLength >= 0 || ve === vs || ve - vs > MAX_CONTENT_LENGTH_DIGITS) return NAME_RESULT.MALFORMED;
        let v = 0;
        for (let i = vs; i < ve; i++) {
          const c = buf[i]!;
          if (c < 0x30 || c > 0x39) return NAME_RESULT.MALFORMED;
          v = v * 10 + (c - 0x30);
        }
        contentLength = v;
      } else if (colon - p === TRANSFER_ENCODING.length && equalsCiText(buf, p, TRANSFER_ENCODING)) {
        teLines++;
        if (teLines > 1) return NAME_RESULT.MALFORMED;
        // The final coding is the last comma-separated token.
        let ts = ve;
        while (ts > vs && buf[ts - 1] !== 0x2c) ts--;
        while (ts < ve && (buf[ts] === SP || buf[ts] === HTAB)) ts++;
        chunked = ve - ts === 7 && equalsCiText(buf, ts, 'chunked');
      } else if (colon - p === UPGRADE.length && equalsCiText(buf, p, UPGRADE)) {
        upgrade = true;
      }
    }
    p = le + 1;
  }
  if (targetHost !== undefined) {
    if (host !== undefined && host !== targetHost) return NAME_RESULT.MALFORMED;
    out.name = targetHost;
    return NAME_RESULT.FOUND;
  }
  if (host === undefined) return NAME_RESULT.ABSENT;
  out.name = host;
  return NAME_RESULT.FOUND;
}

/** host[:port] or [v6]:port → the host, validated and lower-cased; undefined when invalid. */
function authorityHost(b: Uint8Array, s: number, e: number): string | undefined {
  if (s >= e) return undefined;
  // userinfo@ is not allowed in http(s) URIs sent by clients (RFC 9110 §4.2.4: "MUST NOT generate").
  if (indexOf(b, s, e, 0x40) >= 0) return undefined;
  if (b[s] === 0x5b) {
    const close = indexOf(b, s, e, 0x5d);
    if (close < 0) return undefined;
    let lit = '';
    for (let i = s + 1; i < close; i++) {
      const c = b[i]!;
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) || c === COLON || c === 0x2e)) return undefined;
      lit += String.fromCharCode(c | (c >= 0x41 && c <= 0x46 ? 0x20 : 0));
    }
    if (close + 1 < e && !validPort(b, close + 1, e)) return undefined;
    return `[${lit}]`;
  }
  const colon = indexOf(b, s, e, COLON);
  const hostEnd = colon < 0 ? e : colon;
  if (colon >= 0 && !validPort(b, colon, e)) return undefined;
  return hostName(b, s, hostEnd - s);
}

function validPort(b: Uint8Array, colon: number, e: number): boolean {
  if (b[colon] !== COLON) return false;
  if (e - colon - 1 > 5) return false;
  for (let i = colon + 1; i < e; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function findLf(b: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e; i++) if (b[i] === LF) return i;
  return -1;
}

function trimCr(b: Uint8Array, s: number, lf: number): number {
  return lf > s && b[lf - 1] === CR ? lf - 1 : lf;
}

function indexOf(b: Uint8Array, s: number, e: number, c: number): number {
  for (let i = s; i < e; i++) if (b[i] === c) return i;
  return -1;
}

function startsWith(b: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

function startsWithCi(b: Uint8Array, at: number, end: number, text: string): boolean {
  if (end - at < text.length) return false;
  for (let i = 0; i < text.length; i++) {
    const c = b[at + i]!;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== text.charCodeAt(i)) return false;
  }
  return true;
}

function equalsCi(b: Uint8Array, at: number, lower: number[]): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = b[at + i]!;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower[i]) return false;
  }
  return true;
}

function equalsCiText(b: Uint8Array, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = b[at + i]!;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Where a chunked body (RFC 9112 §7.1) is: chunk-size line, chunk data, its CRLF, or the trailer section. */
export const CHUNK_PHASE = { SIZE: 0, EXT: 1, DATA: 2, DATA_CR: 3, DATA_LF: 4, TRAILER: 5, TRAILER_LINE: 6, TRAILER_LF: 7, DONE: 8, BAD: 9 } as const;

/** Longest chunk-size line or trailer line accepted, bytes. */
export const CHUNK_MAX_LINE_BYTES = 4096;
/** Largest chunk accepted (16 hex digits would overflow a double's integers). */
const CHUNK_MAX_BYTES = 2 ** 48;

/**
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF                       (RFC 9112 §7.1)
 * One reused object per reader; bare LF accepted as for the head (RFC 9112 §2.2).
 */
export interface ChunkState {
  phase: number;
  /** Chunk-size being read, then data bytes left. */
  size: number;
  digits: number;
  lineBytes: number;
}

export function createChunkState(): ChunkState {
  return { phase: CHUNK_PHASE.SIZE, size: 0, digits: 0, lineBytes: 0 };
}

export function resetChunkState(c: ChunkState): void {
  c.phase = CHUNK_PHASE.SIZE;
  c.size = 0;
  c.digits = 0;
  c.lineBytes = 0;
}

/** Advances over buf[off, off+len); returns the bytes used (up to the end of the body: phase DONE) or stops at BAD. */
export function skipChunked(c: ChunkState, buf: Uint8Array, off: number, len: number): number {
  let i = 0;
  while (i < len && c.phase !== CHUNK_PHASE.DONE && c.phase !== CHUNK_PHASE.BAD) {
    if (c.phase === CHUNK_PHASE.DATA) {
      const n = Math.min(c.size, len - i);
      c.size -= n;
      i += n;
      if (c.size === 0) c.phase = CHUNK_PHASE.DATA_CR;
      continue;
    }
    const b = buf[off + i]!;
    i++;
    switch (c.phase) {
      case CHUNK_PHASE.SIZE: {
        const d = hexValue(b);
        if (d >= 0) {
          c.size = c.size * 16 + d;
          c.digits++;
          if (c.size > CHUNK_MAX_BYTES) c.phase = CHUNK_PHASE.BAD;
        } else if (c.digits > 0 && (b === 0x3b || b === SP || b === HTAB)) {
          c.phase = CHUNK_PHASE.EXT;
        } else if (c.digits > 0 && (b === CR || b === LF)) {
          c.phase = CHUNK_PHASE.EXT;
          if (b === LF) endSizeLine(c);
        } else {
          c.phase = CHUNK_PHASE.BAD;
        }
        break;
      }
      case CHUNK_PHASE.EXT:
        if (b === LF) endSizeLine(c);
        else if (++c.lineBytes > CHUNK_MAX_LINE_BYTES) c.phase = CHUNK_PHASE.BAD;
        break;
      case CHUNK_PHASE.DATA_CR:
        c.phase = b === CR ? CHUNK_PHASE.DATA_LF : b === LF ? CHUNK_PHASE.SIZE : CHUNK_PHASE.BAD;
        break;
      case CHUNK_PHASE.DATA_LF:
        c.phase = b === LF ? CHUNK_PHASE.SIZE : CHUNK_PHASE.BAD;
        break;
      case CHUNK_PHASE.TRAILER:
        // Start of a trailer line, or of the final empty line.
        c.lineBytes = 0;
        c.phase = b === CR ? CHUNK_PHASE.TRAILER_LF : b === LF ? CHUNK_PHASE.DONE : CHUNK_PHASE.TRAILER_LINE;
        break;
      case CHUNK_PHASE.TRAILER_LINE:
        if (b === LF) c.phase = CHUNK_PHASE.TRAILER;
        else if (++c.lineBytes > CHUNK_MAX_LINE_BYTES) c.phase = CHUNK_PHASE.BAD;
        break;
      case CHUNK_PHASE.TRAILER_LF:
        c.phase = b === LF ? CHUNK_PHASE.DONE : CHUNK_PHASE.BAD;
        break;
      default:
        c.phase = CHUNK_PHASE.BAD;
    }
  }
  return i;
}

function endSizeLine(c: ChunkState): void {
  c.lineBytes = 0;
  c.digits = 0;
  c.phase = c.size === 0 ? CHUNK_PHASE.TRAILER : CHUNK_PHASE.DATA;
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}
