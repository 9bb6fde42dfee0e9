/**
 * Streaming, synchronous body decoding for HTTP content codings (RFC 9110 §8.4.1: gzip, deflate, br), bounded so
 * that a decompression bomb is a counted anomaly, never a crash or an OOM.
 *
 * Choice: synchronous and streaming. Each body chunk goes through the decoders at once, on the worker thread, in
 * stream order, so body events stay in order with the other object events and nothing waits on the thread pool.
 * node:zlib has no public API that is both synchronous and streaming (zlib.*Sync() are one-shot; the stream
 * classes are asynchronous), so this drives the native handle of a node:zlib decoder object directly — the same
 * `handle.writeSync(flush, in, inOff, inLen, out, outOff, outLen)` loop node:zlib's own *Sync() functions run,
 * minus their close at the end. That handle is internal to Node: BodyDecoder checks for it when created and
 * throws a fault (GWI_ERR_ZLIB_HANDLE) if a Node version lacks it, so a change shows up at once in tests.
 *
 * Bounds: output is produced into one fixed buffer (DECODE_OUT_CHUNK_BYTES) and handed on slice by slice, so a
 * decoder never holds more than that; after each slice the total output is checked against maxOutputBytes and
 * against maxRatio × input once output passes ratioFloorBytes. Over either: the decoder stops (DECODE_RESULT.LIMIT)
 * and produces nothing more.
 */
import { constants, createBrotliDecompress, createGunzip, createInflate, createInflateRaw } from 'node:zlib';

/** Output buffer per decoding stage (16 KiB): the most one stage holds at a time. */
export const DECODE_OUT_CHUNK_BYTES = 16 * 1024;

export const DECODE_RESULT = {
  OK: 0,
  /** Output over maxOutputBytes or the ratio bound: a decompression bomb. */
  LIMIT: 1,
  /** Invalid compressed data. */
  ERROR: 2,
} as const;
export type DecodeResult = (typeof DECODE_RESULT)[keyof typeof DECODE_RESULT];

export const CODING = {
  GZIP: 0,
  /** "deflate" is the zlib format (RFC 9110 §8.4.1.2); raw deflate streams are accepted too (common in the wild). */
  DEFLATE: 1,
  BR: 2,
} as const;
export type Coding = (typeof CODING)[keyof typeof CODING];

/** Content-coding name (lower case) → coding, or −1 when unknown. `identity` is no coding and never listed. */
export function codingOf(name: string): number {
  switch (name) {
    case 'gzip':
    case 'x-gzip': // RFC 9110 §8.4.1.3: "A recipient SHOULD consider "x-gzip" to be equivalent to "gzip"."
      return CODING.GZIP;
    case 'deflate':
      return CODING.DEFLATE;
    case 'br':
      return CODING.BR;
    default:
      return -1;
  }
}

export class DecodeFault extends Error {
  readonly code = 'GWI_ERR_ZLIB_HANDLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DecodeFault';
  }
}

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

interface ZlibInternals {
  _handle?: NativeHandle | null;
  _writeState?: Uint32Array;
}

/** RFC 1950 §2.2: CM = 8 in the low nibble of CMF, and CMF·256 + FLG a multiple of 31. */
function isZlibHeader(cmf: number, flg: number): boolean {
  return (cmf & 0x0f) === 8 && (cmf * 256 + flg) % 31 === 0;
}

/** One coding's decoder driven synchronously through its native handle. */
class Stage {
  private handle: NativeHandle | null = null;
  private state: Uint32Array | null = null;
  private readonly flush: number;
  private failed = false;
  private readonly out = new Uint8Array(DECODE_OUT_CHUNK_BYTES);
  /** DEFLATE only: the first byte, kept until the second tells zlib from raw deflate. */
  private first = -1;
  private readonly coding: Coding;

  constructor(coding: Coding) {
    this.coding = coding;
    this.flush = coding === CODING.BR ? constants.BROTLI_OPERATION_PROCESS : constants.Z_SYNC_FLUSH;
    if (coding !== CODING.DEFLATE) this.open(coding === CODING.GZIP ? createGunzip() : createBrotliDecompress());
  }

  private open(obj: object): void {
    const z = obj as ZlibInternals;
    const h = z._handle;
    if (h === null || h === undefined || typeof h.writeSync !== 'function' || !(z._writeState instanceof Uint32Array)) {
      throw new DecodeFault('node:zlib decoder objects have no synchronous native handle in this Node version');
    }
    h.onerror = () => {
      this.failed = true;
    };
    this.handle = h;
    this.state = z._writeState;
  }

  /** Decodes input[off, off + len), passing each output slice to `emit` (which may stop by returning ≠ OK). */
  write(input: Uint8Array, off: number, len: number, emit: (out: Uint8Array) => DecodeResult): DecodeResult {
    if (this.coding === CODING.DEFLATE && this.handle === null) {
      if (len === 0) return DECODE_RESULT.OK;
      if (this.first < 0) {
        this.first = input[off]!;
        off++;
        len--;
        if (len === 0) return DECODE_RESULT.OK;
      }
      this.open(isZlibHeader(this.first, input[off]!) ? createInflate() : createInflateRaw());
      const r = this.run(Uint8Array.of(this.first), 0, 1, emit);
      if (r !== DECODE_RESULT.OK) return r;
    }
    return this.run(input, off, len, emit);
  }

  private run(input: Uint8Array, off: number, len: number, emit: (out: Uint8Array) => DecodeResult): DecodeResult {
    const h = this.handle as NativeHandle;
    const st = this.state as Uint32Array;
    const out = this.out;
    for (;;) {
      h.writeSync(this.flush, input, off, len, out, 0, out.length);
      if (this.failed) return DECODE_RESULT.ERROR;
      const availOut = st[0]!;
      const availIn = st[1]!;
      off += len - availIn;
      len = availIn;
      const have = out.length - availOut;
      if (have > 0) {
        const r = emit(out.subarray(0, have));
        if (r !== DECODE_RESULT.OK) return r;
      }
      // Output space left: the decoder took all it could (input used up, or its stream ended: trailing bytes ignored).
      if (availOut !== 0) return DECODE_RESULT.OK;
    }
  }

  close(): void {
    if (this.handle !== null) this.handle.close();
    this.handle = null;
  }
}

/** Decodes a body encoded with `codings` (in the order they were applied, as Content-Encoding lists them). */
export class BodyDecoder {
  inputBytes = 0;
  outputBytes = 0;
  private readonly stages: Stage[];
  private readonly maxOutputBytes: number;
  private readonly maxRatio: number;
  private readonly ratioFloorBytes: number;
  private sink: (out: Uint8Array) => void = () => {};
  private done: DecodeResult = DECODE_RESULT.OK;
  private readonly emitters: ((out: Uint8Array) => DecodeResult)[];

  constructor(codings: readonly Coding[], maxOutputBytes: number, maxRatio: number, ratioFloorBytes: number) {
    this.maxOutputBytes = maxOutputBytes;
    this.maxRatio = maxRatio;
    this.ratioFloorBytes = ratioFloorBytes;
    // Decoding undoes the codings in reverse order (RFC 9110 §8.4: listed in the order applied).
    this.stages = [];
    try {
      for (let i = codings.length - 1; i >= 0; i--) this.stages.push(new Stage(codings[i] as Coding));
    } catch (err) {
      for (const s of this.stages) s.close();
      throw err;
    }
    this.emitters = this.stages.map((_, i) => (out: Uint8Array) => this.next(i + 1, out));
  }

  /** Feeds encoded bytes; decoded slices go to `sink` (views valid during the call). Returns LIMIT/ERROR once stopped. */
  write(input: Uint8Array, sink: (out: Uint8Array) => void): DecodeResult {
    if (this.done !== DECODE_RESULT.OK) return this.done;
    this.inputBytes += input.length;
    this.sink = sink;
    const r = this.next(0, input);
    if (r !== DECODE_RESULT.OK) {
      this.done = r;
      this.close();
    }
    return r;
  }

  private next(i: number, data: Uint8Array): DecodeResult {
    const stage = this.stages[i];
    if (stage !== undefined) return stage.write(data, 0, data.length, this.emitters[i] as (out: Uint8Array) => DecodeResult);
    this.outputBytes += data.length;
    if (this.outputBytes > this.maxOutputBytes) return DECODE_RESULT.LIMIT;
    if (this.outputBytes > this.ratioFloorBytes && this.outputBytes > this.maxRatio * this.inputBytes) return DECODE_RESULT.LIMIT;
    this.sink(data);
    return DECODE_RESULT.OK;
  }

  close(): void {
    for (const s of this.stages) s.close();
  }
}
