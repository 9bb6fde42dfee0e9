/**
 * HTTP/1.x objects over the two reassembled directions of a connection (RFC 9112), streaming and incremental, one
 * analyzer per connection in Zeek's manner: each direction is a StreamConsumer fed in stream order; the consumer
 * of this module gets objects.
 *
 *   HTTP-message = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]          (RFC 9112 §2.1)
 *   chunked-body = *chunk last-chunk trailer-section CRLF                               (RFC 9112 §7.1)
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *
 * Each message is one object: onObjectStart(kind, head summary) — the header object —, then its body as
 * onBody(bytes) — dechunked and decoded (decode.ts) —, then onObjectEnd(reason). Nothing requires buffering a
 * whole object: only a head is buffered (≤ maxHeadBytes); body bytes are handed on as they arrive, as views of
 * the delivered chunk when the body has no content coding.
 *
 * Message body length, RFC 9112 §6.3: responses to HEAD, 1xx, 204 and 304 have none; a 2xx to CONNECT and a 101
 * turn the connection into a tunnel; Transfer-Encoding overrides Content-Length (both present is a smuggling
 * signal: an anomaly); chunked must be the final transfer coding of a request (else an error); a response without
 * either is delimited by the close. Requests are matched to responses in order (pipelining), bounded by maxPipeline.
 *
 * What is not HTTP becomes one OPAQUE object per direction up to opaqueDepthBytes: a stream that does not start
 * like HTTP, a tunnel, and the rest of a direction after a framing error (the anomaly is reported first). Head
 * lines may end in a bare LF (RFC 9112 §2.2 lets recipients accept it); chunk framing must use CRLF.
 */
import { BodyDecoder, codingOf, DECODE_RESULT, type Coding } from './decode.js';
import { STREAM_END, type StreamConsumer, type StreamEndReason } from './events.js';
import { STREAM_DEPTH_BYTES } from './options.js';

/** Request/status line, field lines and the empty line of one head (32 KiB). */
export const HTTP_MAX_HEAD_BYTES = 32 * 1024;
/** Field lines in one head, or in one trailer section. */
export const HTTP_MAX_HEADER_COUNT = 128;
/** Requests that may await their response (pipelining); beyond, a request is not matched (HEAD/CONNECT unknown). */
export const HTTP_MAX_PIPELINE = 64;
/** A chunk-size line with its extensions (4 KiB). */
export const HTTP_MAX_CHUNK_LINE_BYTES = 4 * 1024;
/** Decoded body bytes per object (64 MiB); more is a decompression bomb. */
export const HTTP_DECODED_MAX_BYTES = 64 * 1024 * 1024;
/** Decoded ÷ encoded bytes per object above which, past HTTP_DECODE_RATIO_FLOOR_BYTES, decoding is a bomb (100). */
export const HTTP_DECODE_MAX_RATIO = 100;
/** Decoded bytes per object below which the ratio is not judged (1 MiB: small bodies compress well). */
export const HTTP_DECODE_RATIO_FLOOR_BYTES = 1024 * 1024;
/** Content codings stacked on one body (e.g. gzip, br); more is an anomaly and the body is not decoded. */
export const HTTP_MAX_CODINGS = 3;
/** Bytes of an OPAQUE object (non-HTTP stream, tunnel) that are delivered (16 MiB, the stream depth). */
export const HTTP_OPAQUE_DEPTH_BYTES = STREAM_DEPTH_BYTES;

export interface HttpOptions {
  readonly maxHeadBytes: number;
  readonly maxHeaderCount: number;
  readonly maxPipeline: number;
  readonly maxChunkLineBytes: number;
  readonly decodedMaxBytes: number;
  readonly decodeMaxRatio: number;
  readonly decodeRatioFloorBytes: number;
  readonly opaqueDepthBytes: number;
}

export const DEFAULT_HTTP_OPTIONS: HttpOptions = Object.freeze({
  maxHeadBytes: HTTP_MAX_HEAD_BYTES,
  maxHeaderCount: HTTP_MAX_HEADER_COUNT,
  maxPipeline: HTTP_MAX_PIPELINE,
  maxChunkLineBytes: HTTP_MAX_CHUNK_LINE_BYTES,
  decodedMaxBytes: HTTP_DECODED_MAX_BYTES,
  decodeMaxRatio: HTTP_DECODE_MAX_RATIO,
  decodeRatioFloorBytes: HTTP_DECODE_RATIO_FLOOR_BYTES,
  opaqueDepthBytes: HTTP_OPAQUE_DEPTH_BYTES,
});

/** Direction of a connection: the client's bytes carry requests, the server's responses. */
export const HTTP_DIR = { REQUEST: 0, RESPONSE: 1 } as const;

export const HTTP_OBJECT = { REQUEST: 0, RESPONSE: 1, OPAQUE: 2 } as const;
export type HttpObjectKind = (typeof HTTP_OBJECT)[keyof typeof HTTP_OBJECT];

export const HTTP_END = {
  /** The body's framing ended it (length reached, last chunk and trailers, no body). */
  COMPLETE: 0,
  /** A close-delimited body or an opaque object ended with the stream's FIN. */
  STREAM_END: 1,
  /** The stream ended (RST, FIN, stop) inside the object. */
  TRUNCATED: 2,
  GAP: 3,
  /** An opaque object reached opaqueDepthBytes, or the stream its depth. */
  DEPTH: 4,
  /** A framing error inside the body (see the anomaly); the rest of the direction is opaque. */
  ERROR: 5,
  /** Decoding hit the output or ratio bound: body bytes after the bound were not delivered. */
  DECODE_LIMIT: 6,
  /** Invalid compressed data: body bytes after it were not delivered. */
  DECODE_ERROR: 7,
} as const;
export type HttpEndReason = (typeof HTTP_END)[keyof typeof HTTP_END];

export const HTTP_ANOMALY = {
  HEAD_TOO_LARGE: 0,
  TOO_MANY_HEADERS: 1,
  BAD_START_LINE: 2,
  /** Whitespace before the colon (RFC 9112 §5.1), obs-fold (§5.2), no colon, a bad field name. */
  BAD_HEADER_LINE: 3,
  /** Content-Length not 1*DIGIT, or several that differ (RFC 9112 §6.3 item 5). */
  BAD_CONTENT_LENGTH: 4,
  /** Transfer-Encoding and Content-Length together (RFC 9112 §6.3 item 3: "ought to be handled as an error"). */
  CONFLICTING_LENGTH: 5,
  /** A request's Transfer-Encoding whose final coding is not chunked (RFC 9112 §6.3 item 4). */
  BAD_TRANSFER_ENCODING: 6,
  BAD_CHUNK: 7,
  TRAILERS_TOO_LARGE: 8,
  UNKNOWN_ENCODING: 9,
  TOO_MANY_ENCODINGS: 10,
  DECOMPRESSION_BOMB: 11,
  DECODE_ERROR: 12,
  PIPELINE_OVERFLOW: 13,
  /** The stream ended or had a gap inside an object. */
  TRUNCATED: 14,
  GAP: 15,
  /** After an HTTP message, bytes that do not start another one. */
  NOT_HTTP_AFTER_MESSAGE: 16,
  /**
   * An incomplete head waited too long (the owner's head wait), or its direction ended inside it: its bytes and
   * the rest of the direction became one opaque object, so they are inspected anyway.
   */
  HEAD_ABANDONED: 17,
} as const;
export type HttpAnomaly = (typeof HTTP_ANOMALY)[keyof typeof HTTP_ANOMALY];
export const HTTP_ANOMALY_NAMES: readonly string[] = Object.keys(HTTP_ANOMALY).map((k) => k.toLowerCase());

export const HTTP_COUNTER = {
  REQUESTS: 0,
  RESPONSES: 1,
  OPAQUE_OBJECTS: 2,
  /** Body bytes as framed on the wire (dechunked, still encoded). */
  BODY_BYTES_WIRE: 3,
  /** Body bytes handed to the consumer (decoded). */
  BODY_BYTES_DELIVERED: 4,
} as const;
const HTTP_FIXED_COUNTERS = Object.keys(HTTP_COUNTER).length;
export const HTTP_COUNTER_NAMES: readonly string[] = [...Object.keys(HTTP_COUNTER).map((k) => k.toLowerCase()), ...HTTP_ANOMALY_NAMES.map((n) => `anomaly_${n}`)];
export function createHttpCounters(): Float64Array {
  return new Float64Array(HTTP_COUNTER_NAMES.length);
}

/** The header object of a message (strings are made once per message, not per packet). */
export interface HttpHead {
  readonly kind: HttpObjectKind;
  /** The x of HTTP/1.x. */
  readonly versionMinor: number;
  /** Requests: method and request-target; responses: ''. */
  readonly method: string;
  readonly target: string;
  /** Responses: status code and reason phrase; requests: 0 and ''. */
  readonly status: number;
  readonly reason: string;
  /** Field lines in order: name in lower case, value without surrounding whitespace. */
  readonly headers: readonly (readonly [string, string])[];
  /** Content-Length, −1 when absent or overridden by Transfer-Encoding. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The body has none (HEAD response, 1xx/204/304, CONNECT, a request without length). */
  readonly bodyless: boolean;
  /** Content codings (and transfer codings other than chunked) in the order applied, lower case. */
  readonly codings: readonly string[];
  /** Body bytes are delivered decoded (false when a coding is unknown or there are too many). */
  readonly decoded: boolean;
  /** The head's bytes, a view valid during onObjectStart only. */
  readonly raw: Uint8Array;
}

export interface HttpConsumer {
  onObjectStart(dir: number, kind: HttpObjectKind, head: HttpHead | null): void;
  /** Body bytes (decoded); a view valid during the call. */
  onBody(dir: number, data: Uint8Array): void;
  onObjectEnd(dir: number, reason: HttpEndReason): void;
  onAnomaly(dir: number, code: HttpAnomaly): void;
}

const ST = {
  START: 0,
  HEAD: 1,
  BODY_LENGTH: 2,
  CHUNK_SIZE: 3,
  CHUNK_EXT: 4,
  CHUNK_SIZE_LF: 5,
  CHUNK_DATA: 6,
  CHUNK_DATA_CR: 7,
  CHUNK_DATA_LF: 8,
  TRAILERS: 9,
  BODY_CLOSE: 10,
  OPAQUE: 11,
  DONE: 12,
} as const;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMI = 0x3b;
/** Longest method token waited for before deciding the bytes are not a request (registered methods are ≤ 17). */
const MAX_METHOD_BYTES = 24;
const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f]; // "HTTP/"
/** Digits of a Content-Length kept exact in a double (< 2^53). */
const MAX_LENGTH_DIGITS = 15;
/** Hex digits of a chunk size kept exact in a double (≤ 2^52). */
const MAX_CHUNK_SIZE_DIGITS = 13;
const HEAD_BUF_INITIAL_BYTES = 1024;

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

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Requests awaiting their response, shared by the two directions of a session. */
interface PendingRequest {
  readonly head: boolean;
  readonly connect: boolean;
}

/** Per connection: the request and response directions. Plug `request`/`response` into the two StreamDirections. */
export class Http1Session {
  readonly request: Http1Direction;
  readonly response: Http1Direction;
  /** Requests not yet answered, in order. */
  readonly pending: PendingRequest[] = [];

  constructor(consumer: HttpConsumer, opts: HttpOptions = DEFAULT_HTTP_OPTIONS, counters: Float64Array = createHttpCounters()) {
    this.request = new Http1Direction(HTTP_DIR.REQUEST, this, consumer, opts, counters);
    this.response = new Http1Direction(HTTP_DIR.RESPONSE, this, consumer, opts, counters);
  }

  /** Stops both directions' decoders (flow gone). */
  close(): void {
    this.request.close();
    this.response.close();
  }
}

/** Interpreted head fields (filled by parseHead). */
interface HeadFacts {
  method: string;
  target: string;
  status: number;
  reason: string;
  versionMinor: number;
  headers: [string, string][];
  contentLength: number;
  lengthError: boolean;
  te: string[];
  ce: string[];
}

export class Http1Direction implements StreamConsumer {
  private state: number = ST.START;
  private readonly dir: number;
  private readonly session: Http1Session;
  private readonly consumer: HttpConsumer;
  private readonly opts: HttpOptions;
  private readonly counters: Float64Array;
  private headBuf: Buffer = Buffer.allocUnsafe(HEAD_BUF_INITIAL_BYTES);
  private headLen = 0;
  private lineStart = 0;
  /** 0: not yet known whether the head starts like HTTP; 1: it does. */
  private looksHttp = 0;
  private inObject = false;
  private messages = 0;
  /** The next bytes are a tunnel (after CONNECT / 101). */
  private tunnel = false;
  private remaining = 0;
  private chunkDigits = 0;
  private chunkLine = 0;
  private trailerBytes = 0;
  private trailerLines = 0;
  private trailerLineLen = 0;
  private opaqueBytes = 0;
  private decoder: BodyDecoder | null = null;
  /** Body delivery stopped (decode limit/error); framing still followed. */
  private bodyStopped = false;
  private endReason: HttpEndReason = HTTP_END.COMPLETE;
  private readonly sink: (out: Uint8Array) => void;

  constructor(dir: number, session: Http1Session, consumer: HttpConsumer, opts: HttpOptions, counters: Float64Array) {
    this.dir = dir;
    this.session = session;
    this.consumer = consumer;
    this.opts = opts;
    this.counters = counters;
    this.sink = (out) => {
      this.counters[HTTP_COUNTER.BODY_BYTES_DELIVERED]! += out.length;
      this.consumer.onBody(this.dir, out);
    };
  }

  /** Bytes of an incomplete head not yet handed to the consumer (they wait for the head's end). */
  get pendingHeadBytes(): number {
    return this.state === ST.HEAD ? this.headLen : 0;
  }

  /**
   * Stop waiting for the head's end: the buffered bytes and the rest of the direction become one opaque object
   * (HEAD_ABANDONED). For a protocol that only looks like HTTP (SMTP's "EHLO x", SSH's banner) or a client that
   * stalls mid-head: its bytes are inspected now instead of waiting for an end that may never come.
   */
  abandonHead(): void {
    if (this.state !== ST.HEAD || this.headLen === 0) return;
    this.anomaly(HTTP_ANOMALY.HEAD_ABANDONED);
    this.toOpaque(true);
  }

  /** Did the direction turn out not to be HTTP (an opaque object that is not a tunnel)? */
  get notHttp(): boolean {
    return this.state === ST.OPAQUE && !this.tunnel;
  }

  /** The session learnt the connection became a tunnel (101 / CONNECT 2xx): later bytes are one opaque object. */
  startTunnel(): void {
    this.tunnel = true;
  }

  onData(data: Uint8Array): void {
    let i = 0;
    const n = data.length;
    while (i < n) {
      switch (this.state) {
        case ST.START: {
          if (this.tunnel) {
            this.beginOpaque();
            break;
          }
          // RFC 9112 §2.2: a recipient SHOULD ignore at least one empty line (CRLF) before the start-line.
          const c = data[i]!;
          if (c === CR || c === LF) i++;
          else {
            this.state = ST.HEAD;
            this.headLen = 0;
            this.lineStart = 0;
            this.looksHttp = 0;
          }
          break;
        }
        case ST.HEAD:
          i = this.head(data, i);
          break;
        case ST.BODY_LENGTH:
        case ST.CHUNK_DATA: {
          const take = Math.min(this.remaining, n - i);
          this.body(data, i, take);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            if (this.state === ST.BODY_LENGTH) this.endObject(HTTP_END.COMPLETE);
            else this.state = ST.CHUNK_DATA_CR;
          }
          break;
        }
        case ST.BODY_CLOSE: {
          this.body(data, i, n - i);
          i = n;
          break;
        }
        case ST.OPAQUE: {
          const take = Math.min(n - i, this.opts.opaqueDepthBytes - this.opaqueBytes);
          this.body(data, i, take);
          this.opaqueBytes += take;
          i += take;
          if (this.opaqueBytes >= this.opts.opaqueDepthBytes) {
            this.endObject(HTTP_END.DEPTH);
            this.state = ST.DONE;
          }
          break;
        }
        case ST.DONE:
          return;
        default:
          i = this.chunkFraming(data, i);
      }
    }
  }

  onGap(): void {
    if (this.state === ST.DONE) return;
    this.abandonHead();
    this.anomaly(HTTP_ANOMALY.GAP);
    if (this.inObject) this.endObject(HTTP_END.GAP);
    this.stop();
  }

  onEnd(_offset: number, reason: StreamEndReason): void {
    if (this.state === ST.DONE) return;
    if (this.state === ST.BODY_CLOSE || this.state === ST.OPAQUE) {
      this.endObject(reason === STREAM_END.DEPTH ? HTTP_END.DEPTH : reason === STREAM_END.FIN ? HTTP_END.STREAM_END : HTTP_END.TRUNCATED);
    } else if (this.state === ST.HEAD && this.headLen > 0) {
      // What was buffered of the head is still handed on (as opaque bytes): nothing delivered goes unseen.
      this.anomaly(HTTP_ANOMALY.TRUNCATED);
      this.abandonHead();
      if (this.inObject) this.endObject(reason === STREAM_END.DEPTH ? HTTP_END.DEPTH : reason === STREAM_END.FIN ? HTTP_END.STREAM_END : HTTP_END.TRUNCATED);
    } else if (this.inObject && reason === STREAM_END.DEPTH) {
      // Inspection stops at the depth; the peer did not cut the message short (not an anomaly).
      this.endObject(HTTP_END.DEPTH);
    } else if (this.inObject) {
      this.anomaly(HTTP_ANOMALY.TRUNCATED);
      this.endObject(HTTP_END.TRUNCATED);
    }
    this.stop();
  }

  onAnomaly(): void {
    // Stream anomalies are the reassembler's to report; an HTTP view of the stream adds nothing to them.
  }

  close(): void {
    this.stop();
  }

  private stop(): void {
    this.state = ST.DONE;
    if (this.decoder !== null) this.decoder.close();
    this.decoder = null;
  }

  /** Accumulates head bytes from data[i]; returns the next index. */
  private head(data: Uint8Array, i: number): number {
    const n = data.length;
    const lf = data.indexOf(LF, i);
    const end = lf < 0 ? n : lf + 1;
    const max = this.opts.maxHeadBytes;
    if (this.headLen + (end - i) > max) {
      const take = max - this.headLen;
      this.append(data, i, i + take);
      this.anomaly(HTTP_ANOMALY.HEAD_TOO_LARGE);
      this.toOpaque(true);
      return i + take;
    }
    this.append(data, i, end);
    if (this.looksHttp === 0) {
      const verdict = this.detect();
      if (verdict < 0) {
        if (this.messages > 0) this.anomaly(HTTP_ANOMALY.NOT_HTTP_AFTER_MESSAGE);
        this.toOpaque(true);
        return end;
      }
      if (verdict > 0) this.looksHttp = 1;
    }
    if (lf >= 0) {
      let lineEnd = this.headLen - 1;
      if (lineEnd > this.lineStart && this.headBuf[lineEnd - 1] === CR) lineEnd--;
      if (lineEnd === this.lineStart && this.lineStart > 0) this.headComplete();
      else this.lineStart = this.headLen;
    }
    return end;
  }

  private append(data: Uint8Array, from: number, to: number): void {
    const need = this.headLen + (to - from);
    if (need > this.headBuf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.opts.maxHeadBytes, Math.max(need, this.headBuf.length * 2)));
      this.headBuf.copy(grown, 0, 0, this.headLen);
      this.headBuf = grown;
    }
    this.headBuf.set(data.subarray(from, to), this.headLen);
    this.headLen = need;
  }

  /** −1: not HTTP; 0: undecided; 1: starts like HTTP (a method token and SP, or "HTTP/"). */
  private detect(): number {
    const b = this.headBuf;
    const len = this.headLen;
    if (this.dir === HTTP_DIR.RESPONSE) {
      const k = Math.min(len, HTTP_SLASH.length);
      for (let j = 0; j < k; j++) if (b[j] !== HTTP_SLASH[j]) return -1;
      return len >= HTTP_SLASH.length ? 1 : 0;
    }
    const k = Math.min(len, MAX_METHOD_BYTES + 1);
    for (let j = 0; j < k; j++) {
      const c = b[j]!;
      if (c === SP) return j > 0 ? 1 : -1;
      if (!isTchar(c)) return -1;
    }
    return len > MAX_METHOD_BYTES ? -1 : 0;
  }

  /** The rest of the direction is one opaque object (with the buffered head bytes when `withHead`). */
  private toOpaque(withHead: boolean): void {
    this.beginOpaque();
    if (withHead && this.headLen > 0) {
      const take = Math.min(this.headLen, this.opts.opaqueDepthBytes);
      this.body(this.headBuf, 0, take);
      this.opaqueBytes += take;
      if (this.opaqueBytes >= this.opts.opaqueDepthBytes) {
        this.endObject(HTTP_END.DEPTH);
        this.state = ST.DONE;
      }
    }
  }

  private beginOpaque(): void {
    this.state = ST.OPAQUE;
    this.opaqueBytes = 0;
    this.inObject = true;
    this.bodyStopped = false;
    this.decoder = null;
    this.endReason = HTTP_END.COMPLETE;
    this.counters[HTTP_COUNTER.OPAQUE_OBJECTS]!++;
    this.consumer.onObjectStart(this.dir, HTTP_OBJECT.OPAQUE, null);
  }

  private headComplete(): void {
    const f: HeadFacts = { method: '', target: '', status: 0, reason: '', versionMinor: 0, headers: [], contentLength: -1, lengthError: false, te: [], ce: [] };
    const bad = this.parseHead(f);
    if (bad !== -1) {
      this.anomaly(bad);
      this.toOpaque(true);
      return;
    }
    this.messages++;
    const isReq = this.dir === HTTP_DIR.REQUEST;
    let bodyless = false;
    let tunnelAfter = false;
    let closeDelimited = false;
    if (isReq) {
      const req: PendingRequest = { head: f.method === 'HEAD', connect: f.method === 'CONNECT' };
      if (this.session.pending.length < this.opts.maxPipeline) this.session.pending.push(req);
      else this.anomaly(HTTP_ANOMALY.PIPELINE_OVERFLOW);
      if (req.connect) tunnelAfter = true;
    } else {
      const interim = f.status >= 100 && f.status < 200 && f.status !== 101;
      const req = interim ? undefined : this.session.pending.shift();
      if (f.status === 101 || (req?.connect === true && f.status >= 200 && f.status < 300)) {
        tunnelAfter = true;
        bodyless = true;
        this.session.request.startTunnel();
      }
      // RFC 9112 §6.3 item 1: HEAD, 1xx, 204, 304 responses end at the head.
      if (req?.head === true || (f.status >= 100 && f.status < 200) || f.status === 204 || f.status === 304) bodyless = true;
    }

    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
    let chunked = false;
    const codingNames = [...f.ce];
    if (f.te.length > 0) {
      if (f.contentLength >= 0 || f.lengthError) this.anomaly(HTTP_ANOMALY.CONFLICTING_LENGTH);
      f.contentLength = -1;
      f.lengthError = false;
      chunked = f.te[f.te.length - 1] === 'chunked';
      for (const c of f.te) if (c !== 'chunked') codingNames.push(c);
      if (!chunked && isReq) {
        this.anomaly(HTTP_ANOMALY.BAD_TRANSFER_ENCODING);
        this.toOpaque(true);
        return;
      }
    } else if (f.lengthError) {
      this.anomaly(HTTP_ANOMALY.BAD_CONTENT_LENGTH);
      this.toOpaque(true);
      return;
    }
    if (isReq) {
      if (!chunked && f.contentLength <= 0) bodyless = true;
    } else if (!bodyless && !chunked && f.contentLength < 0) {
      closeDelimited = true;
    }
    if (!bodyless && !chunked && f.contentLength === 0) bodyless = true;

    let decoded = true;
    let codings: Coding[] = [];
    if (!bodyless && codingNames.length > 0) {
      if (codingNames.length > HTTP_MAX_CODINGS) {
        this.anomaly(HTTP_ANOMALY.TOO_MANY_ENCODINGS);
        decoded = false;
      } else {
        for (const name of codingNames) {
          const c = codingOf(name);
          if (c < 0) {
            this.anomaly(HTTP_ANOMALY.UNKNOWN_ENCODING);
            decoded = false;
            break;
          }
          codings.push(c as Coding);
        }
      }
      if (!decoded) codings = [];
    }

    const head: HttpHead = {
      kind: isReq ? HTTP_OBJECT.REQUEST : HTTP_OBJECT.RESPONSE,
      versionMinor: f.versionMinor,
      method: f.method,
      target: f.target,
      status: f.status,
      reason: f.reason,
      headers: f.headers,
      contentLength: f.contentLength,
      chunked,
      bodyless,
      codings: codingNames,
      decoded,
      raw: this.headBuf.subarray(0, this.headLen),
    };
    this.inObject = true;
    this.bodyStopped = false;
    this.endReason = HTTP_END.COMPLETE;
    this.decoder = codings.length > 0 ? new BodyDecoder(codings, this.opts.decodedMaxBytes, this.opts.decodeMaxRatio, this.opts.decodeRatioFloorBytes) : null;
    this.counters[isReq ? HTTP_COUNTER.REQUESTS : HTTP_COUNTER.RESPONSES]!++;
    this.consumer.onObjectStart(this.dir, head.kind, head);
    if (this.headBuf.length > HEAD_BUF_INITIAL_BYTES) this.headBuf = Buffer.allocUnsafe(HEAD_BUF_INITIAL_BYTES);
    this.headLen = 0;

    if (bodyless) {
      this.endObject(HTTP_END.COMPLETE);
      if (tunnelAfter) this.tunnel = true;
      return;
    }
    if (tunnelAfter) this.tunnel = true;
    if (chunked) {
      this.state = ST.CHUNK_SIZE;
      this.remaining = 0;
      this.chunkDigits = 0;
      this.chunkLine = 0;
    } else if (closeDelimited) {
      this.state = ST.BODY_CLOSE;
    } else {
      this.state = ST.BODY_LENGTH;
      this.remaining = f.contentLength;
    }
  }

  /** Parses headBuf[0, headLen) into f; returns an HTTP_ANOMALY code, or −1 when the head is valid. */
  private parseHead(f: HeadFacts): HttpAnomaly | -1 {
    const b = this.headBuf;
    const end = this.headLen;
    let pos = 0;
    let first = true;
    let count = 0;
    while (pos < end) {
      const lf = b.indexOf(LF, pos);
      const next = lf < 0 ? end : lf + 1;
      let le = lf < 0 ? end : lf;
      if (le > pos && b[le - 1] === CR) le--;
      if (le === pos) break; // the empty line
      if (first) {
        if (!this.startLine(b, pos, le, f)) return HTTP_ANOMALY.BAD_START_LINE;
        first = false;
      } else {
        if (++count > this.opts.maxHeaderCount) return HTTP_ANOMALY.TOO_MANY_HEADERS;
        if (!this.fieldLine(b, pos, le, f)) return HTTP_ANOMALY.BAD_HEADER_LINE;
      }
      pos = next;
    }
    return -1;
  }

  private startLine(b: Buffer, s: number, e: number, f: HeadFacts): boolean {
    const sp1 = b.indexOf(SP, s);
    if (sp1 < 0 || sp1 >= e) return false;
    if (this.dir === HTTP_DIR.RESPONSE) {
      // status-line = HTTP-version SP status-code SP [ reason-phrase ]      (RFC 9112 §4)
      if (!this.version(b, s, sp1, f)) return false;
      if (e - sp1 < 4) return false;
      let status = 0;
      for (let k = sp1 + 1; k < sp1 + 4; k++) {
        const d = b[k]! - 0x30;
        if (d < 0 || d > 9) return false;
        status = status * 10 + d;
      }
      if (sp1 + 4 < e && b[sp1 + 4] !== SP) return false;
      f.status = status;
      f.reason = sp1 + 5 < e ? b.toString('latin1', sp1 + 5, e) : '';
      return status >= 100;
    }
    // request-line = method SP request-target SP HTTP-version             (RFC 9112 §3)
    const sp2 = b.indexOf(SP, sp1 + 1);
    if (sp2 < 0 || sp2 >= e || sp2 === sp1 + 1) return false;
    const sp3 = b.indexOf(SP, sp2 + 1);
    if (sp3 >= 0 && sp3 < e) return false;
    if (!this.version(b, sp2 + 1, e, f)) return false;
    f.method = b.toString('latin1', s, sp1);
    f.target = b.toString('latin1', sp1 + 1, sp2);
    return true;
  }

  /** HTTP-version = "HTTP/" DIGIT "." DIGIT, major 1 only (RFC 9112 §2.3). */
  private version(b: Buffer, s: number, e: number, f: HeadFacts): boolean {
    if (e - s !== 8) return false;
    for (let k = 0; k < 5; k++) if (b[s + k] !== HTTP_SLASH[k]) return false;
    if (b[s + 5] !== 0x31 || b[s + 6] !== 0x2e) return false;
    const minor = b[s + 7]! - 0x30;
    if (minor < 0 || minor > 9) return false;
    f.versionMinor = minor;
    return true;
  }

  /** field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). */
  private fieldLine(b: Buffer, s: number, e: number, f: HeadFacts): boolean {
    const c0 = b[s]!;
    if (c0 === SP || c0 === HTAB) return false; // obs-fold, RFC 9112 §5.2
    let colon = s;
    while (colon < e && isTchar(b[colon]!)) colon++;
    // RFC 9112 §5.1: "No whitespace is allowed between the field name and colon."
    if (colon === s || colon >= e || b[colon] !== COLON) return false;
    let vs = colon + 1;
    let ve = e;
    while (vs < ve && (b[vs] === SP || b[vs] === HTAB)) vs++;
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
    const name = b.toString('latin1', s, colon).toLowerCase();
    const value = b.toString('latin1', vs, ve);
    f.headers.push([name, value]);
    switch (name) {
      case 'content-length':
        for (const part of value.split(',')) {
          const v = part.trim();
          if (v.length === 0 || v.length > MAX_LENGTH_DIGITS || !/^[0-9]+$/.test(v)) {
            f.lengthError = true;
            continue;
          }
          const len = Number(v);
          if (f.contentLength >= 0 && f.contentLength !== len) f.lengthError = true;
          f.contentLength = len;
        }
        break;
      case 'transfer-encoding':
        for (const part of value.split(',')) {
          const v = part.trim().toLowerCase();
          if (v.length > 0) f.te.push(v);
        }
        break;
      case 'content-encoding':
        for (const part of value.split(',')) {
          const v = part.trim().toLowerCase();
          if (v.length > 0 && v !== 'identity') f.ce.push(v);
        }
        break;
      default:
    }
    return true;
  }

  /** Chunked framing bytes from data[i] (states CHUNK_SIZE … TRAILERS); returns the next index. */
  private chunkFraming(data: Uint8Array, i: number): number {
    const n = data.length;
    while (i < n) {
      const c = data[i]!;
      switch (this.state) {
        case ST.CHUNK_SIZE: {
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.chunkDigits > MAX_CHUNK_SIZE_DIGITS) return this.chunkError(i);
            this.remaining = this.remaining * 16 + h;
          } else if (this.chunkDigits === 0) {
            return this.chunkError(i);
          } else if (c === CR) {
            this.state = ST.CHUNK_SIZE_LF;
          } else if (c === SEMI || c === SP || c === HTAB) {
            // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )   (RFC 9112 §7.1.1)
            this.state = ST.CHUNK_EXT;
          } else {
            return this.chunkError(i);
          }
          if (++this.chunkLine > this.opts.maxChunkLineBytes) return this.chunkError(i);
          i++;
          break;
        }
        case ST.CHUNK_EXT:
          if (c === CR) this.state = ST.CHUNK_SIZE_LF;
          else if (c === LF || (c < 0x20 && c !== HTAB) || c === 0x7f) return this.chunkError(i);
          if (++this.chunkLine > this.opts.maxChunkLineBytes) return this.chunkError(i);
          i++;
          break;
        case ST.CHUNK_SIZE_LF:
          if (c !== LF) return this.chunkError(i);
          i++;
          if (this.remaining === 0) {
            this.state = ST.TRAILERS;
            this.trailerBytes = 0;
            this.trailerLines = 0;
            this.trailerLineLen = 0;
          } else {
            this.state = ST.CHUNK_DATA;
          }
          return i;
        case ST.CHUNK_DATA_CR:
          if (c !== CR) return this.chunkError(i);
          this.state = ST.CHUNK_DATA_LF;
          i++;
          break;
        case ST.CHUNK_DATA_LF:
          if (c !== LF) return this.chunkError(i);
          this.state = ST.CHUNK_SIZE;
          this.remaining = 0;
          this.chunkDigits = 0;
          this.chunkLine = 0;
          i++;
          break;
        case ST.TRAILERS:
          // trailer-section = *( field-line CRLF ), then CRLF; bounded like a head.
          i++;
          if (++this.trailerBytes > this.opts.maxHeadBytes) {
            this.anomaly(HTTP_ANOMALY.TRAILERS_TOO_LARGE);
            return this.chunkError(i);
          }
          if (c === LF) {
            if (this.trailerLineLen === 0) {
              this.endObject(HTTP_END.COMPLETE);
              return i;
            }
            if (++this.trailerLines > this.opts.maxHeaderCount) {
              this.anomaly(HTTP_ANOMALY.TRAILERS_TOO_LARGE);
              return this.chunkError(i);
            }
            this.trailerLineLen = 0;
          } else if (c !== CR) {
            this.trailerLineLen++;
          }
          break;
        default:
          return i;
      }
    }
    return i;
  }

  /** A chunk framing error at data[i]: the object ends in ERROR, the rest of the direction is opaque. */
  private chunkError(i: number): number {
    this.anomaly(HTTP_ANOMALY.BAD_CHUNK);
    this.endObject(HTTP_END.ERROR);
    this.headLen = 0;
    this.toOpaque(false);
    return i;
  }

  private body(data: Uint8Array, from: number, n: number): void {
    if (n <= 0) return;
    this.counters[HTTP_COUNTER.BODY_BYTES_WIRE]! += n;
    if (this.bodyStopped) return;
    const view = from === 0 && n === data.length ? data : data.subarray(from, from + n);
    if (this.decoder === null) {
      this.counters[HTTP_COUNTER.BODY_BYTES_DELIVERED]! += n;
      this.consumer.onBody(this.dir, view);
      return;
    }
    const r = this.decoder.write(view, this.sink);
    if (r === DECODE_RESULT.OK) return;
    this.bodyStopped = true;
    this.decoder = null;
    if (r === DECODE_RESULT.LIMIT) {
      this.anomaly(HTTP_ANOMALY.DECOMPRESSION_BOMB);
      this.endReason = HTTP_END.DECODE_LIMIT;
    } else {
      this.anomaly(HTTP_ANOMALY.DECODE_ERROR);
      this.endReason = HTTP_END.DECODE_ERROR;
    }
  }

  private endObject(reason: HttpEndReason): void {
    if (this.decoder !== null) this.decoder.close();
    this.decoder = null;
    this.inObject = false;
    const r = reason === HTTP_END.COMPLETE || reason === HTTP_END.STREAM_END ? (this.endReason !== HTTP_END.COMPLETE ? this.endReason : reason) : reason;
    this.state = ST.START;
    this.consumer.onObjectEnd(this.dir, r);
  }

  private anomaly(code: HttpAnomaly): void {
    this.counters[HTTP_FIXED_COUNTERS + code]!++;
    this.consumer.onAnomaly(this.dir, code);
  }
}
