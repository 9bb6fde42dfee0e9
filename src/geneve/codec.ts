/**
 * GENEVE (RFC 8926) as AWS Gateway Load Balancer speaks it: decode in place, and build headers for tests, the lab
 * emulator and benches.
 *
 * RFC 8926 §3.4, the fixed header (8 bytes):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |        Virtual Network Identifier (VNI)       |    Reserved   |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                                                               |
 *    ~                    Variable-Length Options                    ~
 *    |                                                               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * RFC 8926 §3.5, each option (4-byte header + Length * 4 bytes of data):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |          Option Class         |      Type     |R|R|R| Length  |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                 Variable-Length Option Data                   |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * AWS GWLB (user guide, "Gateway Load Balancers"; gwlbtun GenevePacket.cpp): class 0x0108, in any order,
 * type 1 = GWLB endpoint id (8 bytes, rendered `vpce-` + 17 hex digits), type 2 = attachment id (8 bytes),
 * type 3 = flow cookie (4 bytes). 3 × 4-byte option headers + 20 bytes data = 32 bytes of options, so the GENEVE
 * header is 40 bytes and outer IPv4 (20) + UDP (8) + GENEVE (40) = 68 bytes of overhead.
 *
 * Receive rules (docs/architecture.md §2), in the order decodeGeneve applies them:
 *   1. 8 bytes of fixed header present.
 *   2. Ver = 0 (§3.4: "Packets received by a tunnel endpoint with an unknown version MUST be dropped").
 *   3. 8 + Opt Len * 4 fits the datagram.
 *   4. O = 0: control packets are not data; we have no control protocol (§3.4: they "MUST NOT be forwarded").
 *   5. Options tile Opt Len exactly; each critical option (type & 0x80) must be understood (§3.5); AWS options we
 *      understand must have their defined lengths. Non-critical unknown options are counted and kept (they stay in
 *      the header bytes the return path re-sends). Reserved bits and R bits are ignored (§3.4, §3.5: "MUST be
 *      ignored on receipt").
 *   6. Protocol Type 0x0800 or 0x86DD (GWLB carries bare IP).
 *   7. At least one byte of inner packet, and its version nibble agrees with Protocol Type.
 * The C bit is reported but not trusted: options are always walked, so a critical option is honoured even when a
 * sender forgot to set C.
 *
 * Missing AWS options are NOT an anomaly here (RFC 8926 does not require them; gwlbtun drops such packets): the
 * `has*` flags say what was present and the data plane decides.
 */
import { Buffer } from 'node:buffer';
import type { GeneveHeader } from './types.js';

/** IANA UDP port for GENEVE (RFC 8926 §3.3). */
export const GENEVE_PORT = 6081;

/** RFC 8926 §3.4: fixed header length, bytes. */
export const GENEVE_FIXED_HEADER_LENGTH = 8;
/** RFC 8926 §3.4: the only version defined. */
export const GENEVE_VERSION = 0;
/** RFC 8926 §3.4 first byte: Ver (2 bits) | Opt Len (6 bits, in 4-byte multiples). */
export const GENEVE_VERSION_SHIFT = 6;
export const GENEVE_OPT_LEN_MASK = 0x3f;
/** RFC 8926 §3.4 second byte: O (1) | C (1) | Rsvd (6). */
export const GENEVE_FLAG_OAM = 0x80;
export const GENEVE_FLAG_CRITICAL = 0x40;
/** RFC 8926 §3.4: Opt Len and option Length count 4-byte words. */
export const GENEVE_WORD_BYTES = 4;
/** RFC 8926 §3.4: VNI is the top 24 bits of the second 32-bit word. */
export const GENEVE_VNI_SHIFT = 8;
/** RFC 8926 §3.5: option header length, bytes. */
export const GENEVE_OPTION_HEADER_LENGTH = 4;
/** RFC 8926 §3.5: the high bit of Type marks a critical option. */
export const GENEVE_OPTION_TYPE_CRITICAL = 0x80;
/** RFC 8926 §3.5: 3 R bits then 5 bits of Length (4-byte words, excluding the option header). */
export const GENEVE_OPTION_LENGTH_MASK = 0x1f;
/** RFC 8926 §3.4: the largest header, 8 + 63 * 4 bytes. */
export const GENEVE_MAX_HEADER_LENGTH = GENEVE_FIXED_HEADER_LENGTH + GENEVE_OPT_LEN_MASK * GENEVE_WORD_BYTES;

/** Protocol Type values GWLB uses (RFC 8926 §3.4 uses EtherType numbering). */
export const GENEVE_PROTOCOL_IPV4 = 0x0800;
export const GENEVE_PROTOCOL_IPV6 = 0x86dd;

/** AWS GWLB option class (IANA Geneve Option Class registry: 0x0108, Amazon). */
export const AWS_OPTION_CLASS = 0x0108;
export const AWS_OPTION_TYPE = {
  ENDPOINT_ID: 1,
  ATTACHMENT_ID: 2,
  FLOW_COOKIE: 3,
} as const;
/** AWS option data lengths, bytes (gwlbtun GenevePacket.cpp accepts only these). */
export const AWS_ENDPOINT_ID_LENGTH = 8;
export const AWS_ATTACHMENT_ID_LENGTH = 8;
export const AWS_FLOW_COOKIE_LENGTH = 4;

/** GWLB's GENEVE header: 8 fixed + (4 + 8) + (4 + 8) + (4 + 4) option bytes. */
export const GWLB_GENEVE_HEADER_LENGTH = 40;
/** Outer IPv4 (20) + UDP (8) + GENEVE (40). */
export const GWLB_OVERHEAD_BYTES = 68;
/** Largest inner packet GWLB carries (bytes); it never fragments nor sends "frag needed". */
export const GWLB_MAX_INNER_BYTES = 8500;
/** Largest outer IPv4 datagram GWLB sends: we must accept it and never emit a larger one. */
export const GWLB_MAX_DATAGRAM_BYTES = GWLB_MAX_INNER_BYTES + GWLB_OVERHEAD_BYTES; // 8568

/** Why decodeGeneve refused a datagram (0 = usable). Stable numbers: they index GENEVE_ANOMALY_NAMES and stats. */
export const GENEVE_ANOMALY = {
  OK: 0,
  /** Fewer than 8 bytes. */
  TOO_SHORT: 1,
  /** Ver ≠ 0. */
  BAD_VERSION: 2,
  /** 8 + Opt Len * 4 exceeds the datagram. */
  OPT_LEN_EXCEEDS_DATAGRAM: 3,
  /** O bit set: a control message, never forwarded. */
  OAM_PACKET: 4,
  /** An option's header or data runs past Opt Len (options do not tile Opt Len exactly). */
  OPTION_OVERRUN: 5,
  /** An option with the critical bit set that we do not understand. */
  CRITICAL_OPTION_UNKNOWN: 6,
  /** AWS option type 1/2/3 with a data length other than 8/8/4 bytes. */
  AWS_OPTION_BAD_LENGTH: 7,
  /** Protocol Type is neither 0x0800 nor 0x86DD. */
  UNSUPPORTED_PROTOCOL: 8,
  /** No bytes after the header. */
  INNER_MISSING: 9,
  /** Inner IP version nibble disagrees with Protocol Type. */
  INNER_VERSION_MISMATCH: 10,
} as const;
export type GeneveAnomaly = (typeof GENEVE_ANOMALY)[keyof typeof GENEVE_ANOMALY];

/** Names by code, for stats and logs: GENEVE_ANOMALY_NAMES[GENEVE_ANOMALY.BAD_VERSION] === 'BAD_VERSION'. */
export const GENEVE_ANOMALY_NAMES: readonly string[] = Object.freeze(
  (Object.keys(GENEVE_ANOMALY) as (keyof typeof GENEVE_ANOMALY)[]).reduce<string[]>((names, k) => {
    names[GENEVE_ANOMALY[k]] = k;
    return names;
  }, []),
);

/** Inner IP version nibble (RFC 791 §3.1, RFC 8200 §3): first byte >> 4. */
const IP_VERSION_SHIFT = 4;

function failed(out: GeneveHeader, anomaly: number): number {
  out.anomaly = anomaly;
  return anomaly;
}

/**
 * Decode the GENEVE header at buf[off, off + len) (the UDP payload) into `out`. Returns (and stores in
 * out.anomaly) a GENEVE_ANOMALY code; 0 means the header is valid and the inner packet starts at
 * off + out.headerLength with len - out.headerLength bytes. Callers guarantee off + len ≤ buf.length.
 *
 * Every field of `out` is reset first. On an anomaly, fields decoded before the failing check keep their values
 * and the others stay at their reset values. Allocation-free; never throws for off + len ≤ buf.length.
 */
// 32-bit fields are read as written-out byte expressions, not buf.readUInt32BE(): a call V8 does not inline (this
// function is too large for all of them to be) returns a value ≥ 2^31 as a new heap number, one allocation per field
// per packet. test/geneve/alloc.test.ts measures that decoding allocates nothing.
export function decodeGeneve(buf: Buffer, off: number, len: number, out: GeneveHeader): number {
  out.anomaly = GENEVE_ANOMALY.OK;
  out.offset = off;
  out.headerLength = 0;
  out.version = 0;
  out.oam = false;
  out.critical = false;
  out.protocolType = 0;
  out.vni = 0;
  out.optionCount = 0;
  out.hasEndpointId = false;
  out.endpointIdHi = 0;
  out.endpointIdLo = 0;
  out.hasAttachmentId = false;
  out.attachmentIdHi = 0;
  out.attachmentIdLo = 0;
  out.hasFlowCookie = false;
  out.flowCookie = 0;
  out.flowCookieOffset = -1;
  out.unknownOptionCount = 0;

  if (len < GENEVE_FIXED_HEADER_LENGTH) return failed(out, GENEVE_ANOMALY.TOO_SHORT);
  const b0 = buf.readUInt8(off);
  const b1 = buf.readUInt8(off + 1);
  const headerLength = GENEVE_FIXED_HEADER_LENGTH + (b0 & GENEVE_OPT_LEN_MASK) * GENEVE_WORD_BYTES;
  out.version = b0 >>> GENEVE_VERSION_SHIFT;
  out.headerLength = headerLength;
  // §3.4: Rsvd (the low 6 bits of b1) and the last byte are ignored on receipt.
  out.oam = (b1 & GENEVE_FLAG_OAM) !== 0;
  out.critical = (b1 & GENEVE_FLAG_CRITICAL) !== 0;
  out.protocolType = buf.readUInt16BE(off + 2);
  // VNI: the 24 bits before the reserved byte (§3.4).
  out.vni = ((buf[off + 4] as number) << 16) | ((buf[off + 5] as number) << 8) | (buf[off + 6] as number);

  // §3.4: "Packets received by a tunnel endpoint with an unknown version MUST be dropped."
  if (out.version !== GENEVE_VERSION) return failed(out, GENEVE_ANOMALY.BAD_VERSION);
  if (headerLength > len) return failed(out, GENEVE_ANOMALY.OPT_LEN_EXCEEDS_DATAGRAM);
  // §3.4: control packets "MUST NOT be forwarded by the tunnel endpoint"; we speak no control protocol.
  if (out.oam) return failed(out, GENEVE_ANOMALY.OAM_PACKET);

  // §3.5 option walk; the options region is [off + 8, off + headerLength), already inside the datagram.
  const end = off + headerLength;
  let p = off + GENEVE_FIXED_HEADER_LENGTH;
  while (p < end) {
    // Opt Len and option lengths are whole 4-byte words, so p + 4 ≤ end here; the check documents it.
    if (p + GENEVE_OPTION_HEADER_LENGTH > end) return failed(out, GENEVE_ANOMALY.OPTION_OVERRUN);
    const optClass = buf.readUInt16BE(p);
    const optType = buf.readUInt8(p + 2);
    // §3.5: the three R bits "MUST be ignored on receipt" — mask them off.
    const dataLength = (buf.readUInt8(p + 3) & GENEVE_OPTION_LENGTH_MASK) * GENEVE_WORD_BYTES;
    const data = p + GENEVE_OPTION_HEADER_LENGTH;
    if (data + dataLength > end) return failed(out, GENEVE_ANOMALY.OPTION_OVERRUN);
    out.optionCount++;
    if (optClass === AWS_OPTION_CLASS && optType === AWS_OPTION_TYPE.ENDPOINT_ID) {
      if (dataLength !== AWS_ENDPOINT_ID_LENGTH) return failed(out, GENEVE_ANOMALY.AWS_OPTION_BAD_LENGTH);
      // A repeated option overwrites: the last one wins, as in gwlbtun.
      out.hasEndpointId = true;
      out.endpointIdHi = ((((buf[data] as number) << 24) | ((buf[data + 1] as number) << 16) | ((buf[data + 2] as number) << 8) | (buf[data + 3] as number)) >>> 0);
      out.endpointIdLo = ((((buf[data + 4] as number) << 24) | ((buf[data + 5] as number) << 16) | ((buf[data + 6] as number) << 8) | (buf[data + 7] as number)) >>> 0);
    } else if (optClass === AWS_OPTION_CLASS && optType === AWS_OPTION_TYPE.ATTACHMENT_ID) {
      if (dataLength !== AWS_ATTACHMENT_ID_LENGTH) return failed(out, GENEVE_ANOMALY.AWS_OPTION_BAD_LENGTH);
      out.hasAttachmentId = true;
      out.attachmentIdHi = ((((buf[data] as number) << 24) | ((buf[data + 1] as number) << 16) | ((buf[data + 2] as number) << 8) | (buf[data + 3] as number)) >>> 0);
      out.attachmentIdLo = ((((buf[data + 4] as number) << 24) | ((buf[data + 5] as number) << 16) | ((buf[data + 6] as number) << 8) | (buf[data + 7] as number)) >>> 0);
    } else if (optClass === AWS_OPTION_CLASS && optType === AWS_OPTION_TYPE.FLOW_COOKIE) {
      if (dataLength !== AWS_FLOW_COOKIE_LENGTH) return failed(out, GENEVE_ANOMALY.AWS_OPTION_BAD_LENGTH);
      out.hasFlowCookie = true;
      out.flowCookie = ((((buf[data] as number) << 24) | ((buf[data + 1] as number) << 16) | ((buf[data + 2] as number) << 8) | (buf[data + 3] as number)) >>> 0);
      out.flowCookieOffset = data - off;
    } else {
      out.unknownOptionCount++;
      // §3.5: "If a receiving tunnel endpoint encounters an option with this bit set that it does not
      // understand, it MUST drop the packet." Non-critical ones are kept verbatim in the header bytes.
      if ((optType & GENEVE_OPTION_TYPE_CRITICAL) !== 0) return failed(out, GENEVE_ANOMALY.CRITICAL_OPTION_UNKNOWN);
    }
    p = data + dataLength;
  }

  const proto = out.protocolType;
  if (proto !== GENEVE_PROTOCOL_IPV4 && proto !== GENEVE_PROTOCOL_IPV6) {
    return failed(out, GENEVE_ANOMALY.UNSUPPORTED_PROTOCOL);
  }
  if (headerLength >= len) return failed(out, GENEVE_ANOMALY.INNER_MISSING);
  const innerVersion = buf.readUInt8(end) >>> IP_VERSION_SHIFT;
  if (innerVersion !== (proto === GENEVE_PROTOCOL_IPV4 ? 4 : 6)) {
    return failed(out, GENEVE_ANOMALY.INNER_VERSION_MISMATCH);
  }
  return GENEVE_ANOMALY.OK;
}

// ---------------------------------------------------------------------------------------------------------------
// Endpoint id text. gwlbtun (utils.cpp MakeGwlbeStr) reads the 8 option bytes as one big-endian uint64 and prints
// it with `std::hex << std::setw(17) << std::setfill('0')`: lowercase hex, zero-padded to 17 digits, after
// "vpce-". A uint64 has at most 16 hex digits, so the first of the 17 is always '0' — which is what AWS ids look
// like (vpce-0123456789abcdef0). Byte 0 of the option data is the most significant byte.

const VPCE_PREFIX = 'vpce-';
const VPCE_HEX_DIGITS = 17;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/** Endpoint id halves (as decoded from option type 1) → "vpce-" + 17 lowercase hex digits. */
export function formatEndpointId(hi: number, lo: number): string {
  return `${VPCE_PREFIX}0${hex8(hi)}${hex8(lo)}`;
}

/**
 * Inverse of formatEndpointId: "vpce-" + exactly 17 hex digits (either case) whose value fits 64 bits (so the
 * first digit is '0'). Undefined for anything else. For configuration, not the packet path.
 */
export function parseEndpointId(s: string): { hi: number; lo: number } | undefined {
  if (s.length !== VPCE_PREFIX.length + VPCE_HEX_DIGITS || !s.startsWith(VPCE_PREFIX)) return undefined;
  const digits = s.slice(VPCE_PREFIX.length);
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i) | 0x20; // ASCII lowercase
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return undefined;
  }
  if (digits.charCodeAt(0) !== 0x30) return undefined; // 17 significant digits exceed 64 bits
  return { hi: Number.parseInt(digits.slice(1, 9), 16) >>> 0, lo: Number.parseInt(digits.slice(9), 16) >>> 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding: for tests, the lab emulator and benches. Not the return path, which re-sends received bytes verbatim.

export interface GeneveEncodeOptions {
  /** Default 0x0800. */
  protocolType?: number;
  /** Default 0 (GWLB always sends 0). 24 bits. */
  vni?: number;
  /** Default 0. 2 bits; anything else is written as given for negative tests. */
  version?: number;
  oam?: boolean;
  /** C bit; default: set when extraOptions holds an option whose type has the critical bit. */
  critical?: boolean;
  /** Default 0. Written into Rsvd (6 bits) of byte 1, for "reserved bits are ignored" tests. */
  reservedBits?: number;
  /** Default 0. Written into the final reserved byte. */
  reservedByte?: number;
  endpointIdHi?: number;
  endpointIdLo?: number;
  attachmentIdHi?: number;
  attachmentIdLo?: number;
  flowCookie?: number;
  /** Which AWS options to write, in this order. Default [1, 2, 3] (the GWLB layout). */
  awsOptions?: readonly number[];
  /** Raw option bytes appended after the AWS options (each a full RFC 8926 §3.5 option; whole 4-byte words). */
  extraOptions?: Uint8Array;
}

/** Build a GENEVE header (fixed part + options) as GWLB would send it. Throws RangeError on impossible input. */
export function encodeGeneveHeader(opts: GeneveEncodeOptions = {}): Buffer {
  const aws = opts.awsOptions ?? [AWS_OPTION_TYPE.ENDPOINT_ID, AWS_OPTION_TYPE.ATTACHMENT_ID, AWS_OPTION_TYPE.FLOW_COOKIE];
  const extra = opts.extraOptions ?? new Uint8Array(0);
  if (extra.length % GENEVE_WORD_BYTES !== 0) throw new RangeError('extraOptions must be whole 4-byte words');
  let optionsLength = extra.length;
  for (const t of aws) {
    if (t === AWS_OPTION_TYPE.ENDPOINT_ID) optionsLength += GENEVE_OPTION_HEADER_LENGTH + AWS_ENDPOINT_ID_LENGTH;
    else if (t === AWS_OPTION_TYPE.ATTACHMENT_ID) optionsLength += GENEVE_OPTION_HEADER_LENGTH + AWS_ATTACHMENT_ID_LENGTH;
    else if (t === AWS_OPTION_TYPE.FLOW_COOKIE) optionsLength += GENEVE_OPTION_HEADER_LENGTH + AWS_FLOW_COOKIE_LENGTH;
    else throw new RangeError(`unknown AWS option type ${t}`);
  }
  const optLenWords = optionsLength / GENEVE_WORD_BYTES;
  if (optLenWords > GENEVE_OPT_LEN_MASK) throw new RangeError(`options too long: ${optionsLength} bytes`);

  let critical = opts.critical;
  if (critical === undefined) {
    critical = false;
    for (let p = 0; p + GENEVE_OPTION_HEADER_LENGTH <= extra.length; ) {
      if (((extra[p + 2] as number) & GENEVE_OPTION_TYPE_CRITICAL) !== 0) critical = true;
      p += GENEVE_OPTION_HEADER_LENGTH + ((extra[p + 3] as number) & GENEVE_OPTION_LENGTH_MASK) * GENEVE_WORD_BYTES;
    }
  }

  const out = Buffer.alloc(GENEVE_FIXED_HEADER_LENGTH + optionsLength);
  out.writeUInt8((((opts.version ?? GENEVE_VERSION) & 0x3) << GENEVE_VERSION_SHIFT) | optLenWords, 0);
  out.writeUInt8(
    (opts.oam === true ? GENEVE_FLAG_OAM : 0) | (critical ? GENEVE_FLAG_CRITICAL : 0) | ((opts.reservedBits ?? 0) & 0x3f),
    1,
  );
  out.writeUInt16BE((opts.protocolType ?? GENEVE_PROTOCOL_IPV4) & 0xffff, 2);
  out.writeUInt32BE(((((opts.vni ?? 0) & 0xffffff) << GENEVE_VNI_SHIFT) | ((opts.reservedByte ?? 0) & 0xff)) >>> 0, 4);
  let p = GENEVE_FIXED_HEADER_LENGTH;
  for (const t of aws) {
    out.writeUInt16BE(AWS_OPTION_CLASS, p);
    out.writeUInt8(t, p + 2);
    if (t === AWS_OPTION_TYPE.FLOW_COOKIE) {
      out.writeUInt8(AWS_FLOW_COOKIE_LENGTH / GENEVE_WORD_BYTES, p + 3);
      out.writeUInt32BE((opts.flowCookie ?? 0) >>> 0, p + 4);
      p += GENEVE_OPTION_HEADER_LENGTH + AWS_FLOW_COOKIE_LENGTH;
    } else {
      const endpoint = t === AWS_OPTION_TYPE.ENDPOINT_ID;
      out.writeUInt8(AWS_ENDPOINT_ID_LENGTH / GENEVE_WORD_BYTES, p + 3);
      out.writeUInt32BE(((endpoint ? opts.endpointIdHi : opts.attachmentIdHi) ?? 0) >>> 0, p + 4);
      out.writeUInt32BE(((endpoint ? opts.endpointIdLo : opts.attachmentIdLo) ?? 0) >>> 0, p + 8);
      p += GENEVE_OPTION_HEADER_LENGTH + AWS_ENDPOINT_ID_LENGTH;
    }
  }
  out.set(extra, p);
  return out;
}

/** encodeGeneveHeader(opts) followed by the inner packet: a complete UDP payload for port 6081. */
export function encodeGeneve(opts: GeneveEncodeOptions, inner: Uint8Array): Buffer {
  return Buffer.concat([encodeGeneveHeader(opts), inner]);
}

/** One raw RFC 8926 §3.5 option (for extraOptions); data is zero-padded to whole 4-byte words. */
export function encodeGeneveOption(optClass: number, type: number, data: Uint8Array = new Uint8Array(0), rBits = 0): Buffer {
  const words = Math.ceil(data.length / GENEVE_WORD_BYTES);
  if (words > GENEVE_OPTION_LENGTH_MASK) throw new RangeError(`option data too long: ${data.length} bytes`);
  const out = Buffer.alloc(GENEVE_OPTION_HEADER_LENGTH + words * GENEVE_WORD_BYTES);
  out.writeUInt16BE(optClass & 0xffff, 0);
  out.writeUInt8(type & 0xff, 2);
  out.writeUInt8(((rBits & 0x7) << 5) | words, 3);
  out.set(data, GENEVE_OPTION_HEADER_LENGTH);
  return out;
}
