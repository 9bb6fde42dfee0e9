/**
 * The server name (SNI) of a TLS ClientHello, read from the first bytes a client sends on a TCP connection.
 *
 * RFC 8446 §5.1 (record layer):
 *   struct { ContentType type;                 // 22 = handshake
 *            ProtocolVersion legacy_record_version;   // 0x0301..0x0303 in practice
 *            uint16 length;                    // ≤ 2^14
 *            opaque fragment[length]; } TLSPlaintext;
 * Handshake messages may be fragmented across records (§5.1: "Handshake messages MAY be coalesced into a single
 * TLSPlaintext record or fragmented across several records"), and records across TCP segments: the caller passes
 * every byte read so far and calls again when more arrive.
 *
 * RFC 8446 §4 / §4.1.2:
 *   struct { HandshakeType msg_type; uint24 length; ... } Handshake;      // msg_type 1 = client_hello
 *   struct { ProtocolVersion legacy_version; Random random[32];
 *            opaque legacy_session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
 *            opaque legacy_compression_methods<1..2^8-1>; Extension extensions<8..2^16-1>; } ClientHello;
 *   struct { ExtensionType extension_type; opaque extension_data<0..2^16-1>; } Extension;
 * RFC 6066 §3 (extension_type 0 = server_name):
 *   struct { NameType name_type; select (name_type) { case host_name: HostName; } name; } ServerName;  // host_name = 0
 *   opaque HostName<1..2^16-1>;  struct { ServerName server_name_list<1..2^16-1> } ServerNameList;
 *
 * The whole ClientHello is required before a name is reported, so a second server_name extension further on
 * (RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type") is seen and refused rather than
 * letting the firewall and the server read different names.
 */
import { NAME_RESULT, type NameResult } from './client-name-result.js';

/** RFC 8446 §5.1. */
export const TLS_CONTENT_HANDSHAKE = 22;
export const TLS_RECORD_HEADER_BYTES = 5;
/** RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes." */
export const TLS_MAX_RECORD_BYTES = 1 << 14;
export const TLS_HANDSHAKE_HEADER_BYTES = 4;
export const TLS_HANDSHAKE_CLIENT_HELLO = 1;
/** RFC 6066 §3. */
export const TLS_EXT_SERVER_NAME = 0;
export const TLS_SNI_HOST_NAME = 0;
const RANDOM_BYTES = 32;
const MAX_SESSION_ID_BYTES = 32;

export interface NameOut {
  name: string;
}

/**
 * Parses buf[off, off + len) (the client's first bytes, in order). FOUND sets out.name (lower case, no trailing
 * dot). `scratch` receives handshake bytes when the ClientHello spans several records; it bounds what is read.
 */
export function parseTlsClientHello(buf: Uint8Array, off: number, len: number, scratch: Uint8Array, out: NameOut): NameResult {
  const end = off + len;
  // First record header: decides whether this is TLS at all.
  if (len < 1) return NAME_RESULT.NEED_MORE;
  if (buf[off] !== TLS_CONTENT_HANDSHAKE) return NAME_RESULT.NOT_THIS_PROTOCOL;
  if (len >= 2 && buf[off + 1] !== 3) return NAME_RESULT.NOT_THIS_PROTOCOL;

  // Reassemble the handshake stream from consecutive handshake records, until the ClientHello is complete.
  let hsLen = 0; // bytes of handshake data gathered
  let need = -1; // total handshake bytes of the ClientHello, once its header is known
  let pos = off;
  let direct = -1; // when the ClientHello sits in one record: its offset in buf (no copy)
  while (pos < end) {
    if (end - pos < TLS_RECORD_HEADER_BYTES) return NAME_RESULT.NEED_MORE;
    if (buf[pos] !== TLS_CONTENT_HANDSHAKE) return NAME_RESULT.MALFORMED; // §5.1: no interleaving before the hello ends
    if (buf[pos + 1] !== 3) return NAME_RESULT.MALFORMED;
    const recLen = (buf[pos + 3]! << 8) | buf[pos + 4]!;
    if (recLen === 0 || recLen > TLS_MAX_RECORD_BYTES) return NAME_RESULT.MALFORMED; // §5.1: zero-length handshake fragments MUST NOT be sent
    const fragOff = pos + TLS_RECORD_HEADER_BYTES;
    const avail = Math.min(recLen, end - fragOff);
    if (hsLen === 0 && avail === recLen && recLen >= TLS_HANDSHAKE_HEADER_BYTES) {
      const total = TLS_HANDSHAKE_HEADER_BYTES + readU24(buf, fragOff + 1);
      if (total <= recLen) direct = fragOff; // the whole ClientHello is inside the first record
    }
    if (direct < 0) {
      if (hsLen + avail > scratch.length) return NAME_RESULT.TOO_LARGE;
      scratch.set(buf.subarray(fragOff, fragOff + avail), hsLen);
    }
    hsLen += avail;
    if (need < 0 && hsLen >= TLS_HANDSHAKE_HEADER_BYTES) {
      const hs = direct >= 0 ? buf : scratch;
      const h = direct >= 0 ? direct : 0;
      if (hs[h] !== TLS_HANDSHAKE_CLIENT_HELLO) return NAME_RESULT.NOT_THIS_PROTOCOL;
      need = TLS_HANDSHAKE_HEADER_BYTES + readU24(hs, h + 1);
      if (need > scratch.length) return NAME_RESULT.TOO_LARGE;
    }
    if (need >= 0 && hsLen >= need) {
      return direct >= 0 ? parseHello(buf, direct + TLS_HANDSHAKE_HEADER_BYTES, need - TLS_HANDSHAKE_HEADER_BYTES, out) : parseHello(scratch, TLS_HANDSHAKE_HEADER_BYTES, need - TLS_HANDSHAKE_HEADER_BYTES, out);
    }
    if (avail < recLen) return NAME_RESULT.NEED_MORE;
    pos = fragOff + recLen;
  }
  return NAME_RESULT.NEED_MORE;
}

function readU24(b: Uint8Array, at: number): number {
  return (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
}

function readU16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

/** ClientHello body at b[p, p + len). */
function parseHello(b: Uint8Array, p0: number, len: number, out: NameOut): NameResult {
  const end = p0 + len;
  let p = p0;
  // legacy_version + random
  if (end - p < 2 + RANDOM_BYTES + 1) return NAME_RESULT.MALFORMED;
  p += 2 + RANDOM_BYTES;
  const sidLen = b[p]!;
  if (sidLen > MAX_SESSION_ID_BYTES) return NAME_RESULT.MALFORMED; // legacy_session_id<0..32>
  p += 1 + sidLen;
  if (end - p < 2) return NAME_RESULT.MALFORMED;
  const csLen = readU16(b, p);
  if (csLen < 2 || (csLen & 1) !== 0) return NAME_RESULT.MALFORMED; // cipher_suites<2..2^16-2>, 2-byte entries
  p += 2 + csLen;
  if (end - p < 1) return NAME_RESULT.MALFORMED;
  const cmLen = b[p]!;
  if (cmLen < 1) return NAME_RESULT.MALFORMED; // legacy_compression_methods<1..2^8-1>
  p += 1 + cmLen;
  if (p > end) return NAME_RESULT.MALFORMED;
  // Pre-TLS 1.2 hellos may end here (no extensions): no SNI.
  if (p === end) return NAME_RESULT.ABSENT;
  if (end - p < 2) return NAME_RESULT.MALFORMED;
  const extLen = readU16(b, p);
  p += 2;
  if (p + extLen !== end) return NAME_RESULT.MALFORMED; // the extensions block must fill the message exactly
  let found: NameResult = NAME_RESULT.ABSENT;
  while (p < end) {
    if (end - p < 4) return NAME_RESULT.MALFORMED;
    const type = readU16(b, p);
    const dataLen = readU16(b, p + 2);
    p += 4;
    if (end - p < dataLen) return NAME_RESULT.MALFORMED;
    if (type === TLS_EXT_SERVER_NAME) {
      if (found !== NAME_RESULT.ABSENT) return NAME_RESULT.MALFORMED; // §4.2: one extension of each type
      found = parseServerNameList(b, p, dataLen, out);
      if (found === NAME_RESULT.MALFORMED) return found;
    }
    p += dataLen;
  }
  return found;
}

function parseServerNameList(b: Uint8Array, p0: number, len: number, out: NameOut): NameResult {
  // An empty extension_data is what a server sends back (RFC 6066 §3), never a client: malformed here.
  if (len < 2) return NAME_RESULT.MALFORMED;
  const listLen = readU16(b, p0);
  if (listLen + 2 !== len || listLen < 3) return NAME_RESULT.MALFORMED;
  let p = p0 + 2;
  const end = p0 + len;
  let result: NameResult = NAME_RESULT.ABSENT;
  while (p < end) {
    if (end - p < 3) return NAME_RESULT.MALFORMED;
    const nameType = b[p]!;
    const nameLen = readU16(b, p + 1);
    p += 3;
    if (nameLen < 1 || end - p < nameLen) return NAME_RESULT.MALFORMED;
    if (nameType === TLS_SNI_HOST_NAME) {
      // RFC 6066 §3: "The ServerNameList MUST NOT contain more than one name of the same name_type."
      if (result === NAME_RESULT.FOUND) return NAME_RESULT.MALFORMED;
      const name = hostName(b, p, nameLen);
      if (name === undefined) return NAME_RESULT.MALFORMED;
      out.name = name;
      result = NAME_RESULT.FOUND;
    }
    p += nameLen;
  }
  return result;
}

/** RFC 6066 §3: HostName is ASCII, no trailing dot. Lower-cased; anything outside LDH, "_" and "." refused. */
export function hostName(b: Uint8Array, p: number, len: number): string | undefined {
  if (len > 255) return undefined;
  let s = '';
  for (let i = 0; i < len; i++) {
    let c = b[p + i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f;
    if (!ok) return undefined;
    s += String.fromCharCode(c);
  }
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.length === 0 || s.startsWith('.') || s.includes('..')) return undefined;
  return s;
}
