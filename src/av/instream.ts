/**
 * One clamd INSTREAM session on node:net, streaming an object's bytes to clamd as they arrive (clamd(8)):
 *
 *   client: "zINSTREAM\0"
 *   client: <length:4, big-endian> <length bytes>      one frame per write(), any number of frames
 *   client: 00 00 00 00                                 zero-length frame: end of the object
 *   clamd:  "stream: OK\0" | "stream: <name> FOUND\0" | "INSTREAM size limit exceeded. ERROR\0" | "... ERROR\0"
 *
 * clamd can answer before the terminator (StreamMaxLength reached) and then closes the connection.
 *
 * Deadlines, each of which destroys the socket: connect (→ unreachable), every write the kernel has not taken
 * within the write deadline (→ timeout), the reply after the terminator was flushed (→ timeout). clamd itself
 * closes a connection idle for its ReadTimeout, which bounds a scan whose owner stops writing.
 * Why not clamdjs here: README.md "Dependency notes".
 */
import { createConnection, type Socket } from 'node:net';
import type { ClamdAddress } from './address.js';
import { parseInstreamReply } from './reply.js';
import { countResult, notScanned, type ScanCounters, type ScanResult } from './result.js';

const INSTREAM_COMMAND = Buffer.from('zINSTREAM\0', 'latin1');
/** The zero-length frame that ends the object. */
const TERMINATOR = Buffer.alloc(4);
const FRAME_HEADER_BYTES = 4;
/** Longest reply we accept; clamd's are one line (a signature name is well under this). */
export const MAX_REPLY_BYTES = 4096;

export interface InstreamLimits {
  readonly connectTimeoutMs: number;
  readonly writeTimeoutMs: number;
  readonly replyTimeoutMs: number;
  readonly maxObjectBytes: number;
  readonly highWaterBytes: number;
  readonly maxBufferedBytes: number;
}

/** A streaming scan: write() the object's bytes as they arrive, then await end(). */
export interface Scan {
  /**
   * Queues `chunk` for clamd without copying it (like net.Socket.write): leave its bytes unchanged until the
   * scan's result has settled. Returns false when more than the high-water mark is buffered: wait for
   * waitDrain() before writing more. A write that takes the buffered bytes past maxBufferedBytes ends the scan as
   * not_scanned(overloaded). Bytes past maxObjectBytes are not sent: the scan ends on the prefix (infected if
   * the prefix is, else not_scanned(size_limit)). Writes after the outcome is known are counted and dropped.
   */
  write(chunk: Uint8Array): boolean;
  /** Resolves when the buffered bytes are at or below the high-water mark, or the outcome is known. */
  waitDrain(): Promise<void>;
  /** Marks the end of the object; resolves with the outcome (never rejects). */
  end(): Promise<ScanResult>;
  /** Settles as soon as the outcome is known, possibly before end() (size limit, clamd error, overload). */
  readonly result: Promise<ScanResult>;
}

type State = 'queued' | 'connecting' | 'streaming' | 'done';

export class InstreamScan implements Scan {
  readonly result: Promise<ScanResult>;
  /** Set by the pool while this scan counts against its connection cap. */
  hasSlot = false;
  private state: State = 'queued';
  private outcome: ScanResult | null = null;
  private socket: Socket | null = null;
  /** Frames written before the connection is up: header, body (null for the terminator), header, body, ... */
  private pending: (Buffer | null)[] = [];
  private pendingBytes = 0;
  private objectBytes = 0;
  private terminated = false;
  /** Bytes past maxObjectBytes were written: a clean verdict covers only the prefix. */
  private overLimit = false;
  private reply: Buffer[] = [];
  private replyBytes = 0;
  private connectTimer: NodeJS.Timeout | null = null;
  private writeTimer: NodeJS.Timeout | null = null;
  private replyTimer: NodeJS.Timeout | null = null;
  private queueTimer: NodeJS.Timeout | null = null;
  private resolveResult: (r: ScanResult) => void = () => {};
  private drain: Promise<void> | null = null;
  private resolveDrain: (() => void) | null = null;
  private released = false;

  constructor(
    private readonly address: ClamdAddress,
    private readonly limits: InstreamLimits,
    private readonly counters: ScanCounters,
    /** Called once when this scan no longer holds (or waits for) a clamd connection. */
    private readonly onRelease: (scan: InstreamScan) => void,
  ) {
    this.result = new Promise((resolve) => {
      this.resolveResult = resolve;
    });
  }

  get isQueued(): boolean {
    return this.state === 'queued' && this.outcome === null;
  }

  write(chunk: Uint8Array): boolean {
    if (this.outcome !== null || this.terminated) {
      this.counters.bytesDiscarded += chunk.length;
      return true;
    }
    // A zero-length frame would be the terminator: never send one for an empty write.
    if (chunk.length > 0) {
      const room = this.limits.maxObjectBytes - this.objectBytes;
      const n = Math.min(chunk.length, room);
      if (n > 0) {
        // Small allocations come from Buffer's shared pool; the bytes themselves are not copied.
        const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        header.writeUInt32BE(n, 0);
        this.objectBytes += n;
        this.send(header, Buffer.from(chunk.buffer, chunk.byteOffset, n));
      }
      if (n < chunk.length) {
        this.overLimit = true;
        this.counters.bytesDiscarded += chunk.length - n;
        // The prefix is all clamd will see: end the stream now and take the verdict on it.
        this.terminate();
      }
    }
    if (this.outcome !== null) return true;
    const buffered = this.buffered();
    if (buffered > this.limits.maxBufferedBytes) {
      this.finish(notScanned('overloaded', `more than ${this.limits.maxBufferedBytes} bytes waiting for clamd`));
      return true;
    }
    return buffered <= this.limits.highWaterBytes;
  }

  waitDrain(): Promise<void> {
    if (this.outcome !== null || this.buffered() <= this.limits.highWaterBytes) return Promise.resolve();
    if (this.drain === null) {
      this.drain = new Promise((resolve) => {
        this.resolveDrain = resolve;
      });
    }
    return this.drain;
  }

  end(): Promise<ScanResult> {
    this.terminate();
    return this.result;
  }

  /** Waits for a pool slot at most `timeoutMs`, then ends as not_scanned(overloaded). */
  enqueue(timeoutMs: number): void {
    this.queueTimer = setTimeout(() => {
      this.finish(notScanned('overloaded', `no free clamd connection within ${timeoutMs} ms`));
    }, timeoutMs);
  }

  /** Opens the connection (the pool calls this when a slot is free). */
  connect(): void {
    if (this.outcome !== null || this.state !== 'queued') return;
    if (this.queueTimer !== null) clearTimeout(this.queueTimer);
    this.queueTimer = null;
    this.state = 'connecting';
    const a = this.address;
    const s = a.kind === 'unix' ? createConnection({ path: a.path }) : createConnection({ host: a.host, port: a.port });
    this.socket = s;
    this.connectTimer = setTimeout(() => {
      this.finish(notScanned('unreachable', `no connection to clamd within ${this.limits.connectTimeoutMs} ms`));
    }, this.limits.connectTimeoutMs);
    s.once('connect', () => this.onConnect(s));
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('end', () => this.onEnd());
    s.on('error', (err: NodeJS.ErrnoException) => this.onError(err));
    s.on('close', () => {
      if (this.outcome === null) this.finish(notScanned('scanner_error', 'connection to clamd closed without a reply'));
      this.release();
    });
    s.on('drain', () => this.onDrain());
  }

  /** Ends the scan with `result` unless it already has an outcome; destroys the connection. */
  finish(result: ScanResult): void {
    if (this.outcome !== null) return;
    this.outcome = result;
    this.state = 'done';
    this.clearTimers();
    this.pending = [];
    this.pendingBytes = 0;
    countResult(this.counters, result);
    this.resolveResult(result);
    this.wakeDrain();
    // The connection goes with the outcome (clamd closes it after a reply anyway): the slot is free now.
    if (this.socket !== null) this.socket.destroy();
    this.release();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
  }

  private buffered(): number {
    return this.pendingBytes + (this.socket === null ? 0 : this.socket.writableLength);
  }

  /** One INSTREAM frame: `header` and `body` in one writev (cork), or queued until the connection is up. */
  private send(header: Buffer, body: Buffer | null): void {
    const s = this.socket;
    if (this.state === 'streaming' && s !== null) {
      let ok: boolean;
      if (body === null) {
        // The terminator: the reply deadline starts once it (and so the whole object) is in the kernel.
        ok = s.write(header, (err) => (err === undefined || err === null ? this.armReplyTimer() : undefined));
      } else {
        this.counters.bytesSent += body.length;
        s.cork();
        s.write(header);
        ok = s.write(body);
        s.uncork();
      }
      if (!ok) this.armWriteTimer();
    } else {
      this.pending.push(header, body);
      this.pendingBytes += header.length + (body === null ? 0 : body.length);
    }
  }

  private terminate(): void {
    if (this.terminated || this.outcome !== null) return;
    this.terminated = true;
    this.send(TERMINATOR, null);
  }

  private onConnect(s: Socket): void {
    if (this.outcome !== null) return;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.state = 'streaming';
    s.setNoDelay(true);
    s.write(INSTREAM_COMMAND);
    const frames = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (let i = 0; i + 1 < frames.length; i += 2) this.send(frames[i] as Buffer, frames[i + 1] ?? null);
    if (s.writableLength > 0) this.armWriteTimer();
    if (this.buffered() <= this.limits.highWaterBytes) this.wakeDrain();
  }

  private onDrain(): void {
    if (this.writeTimer !== null) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    this.wakeDrain();
  }

  private onData(d: Buffer): void {
    if (this.outcome !== null) return;
    this.replyBytes += d.length;
    if (this.replyBytes > MAX_REPLY_BYTES) {
      this.finish(notScanned('protocol_error', `reply longer than ${MAX_REPLY_BYTES} bytes`));
      return;
    }
    this.reply.push(d);
    const nul = d.indexOf(0);
    if (nul < 0) return;
    const all = Buffer.concat(this.reply);
    const result = parseInstreamReply(all.toString('latin1', 0, all.indexOf(0)));
    // Never clean past the size limit: clamd saw only the first maxObjectBytes.
    if (result.kind === 'clean' && this.overLimit) {
      this.finish(notScanned('size_limit', `object larger than ${this.limits.maxObjectBytes} bytes; its prefix was clean`));
    } else this.finish(result);
  }

  private onEnd(): void {
    if (this.outcome !== null) return;
    this.finish(
      this.replyBytes === 0
        ? notScanned('scanner_error', 'clamd closed the connection without a reply')
        : notScanned('protocol_error', `reply without NUL terminator ${JSON.stringify(Buffer.concat(this.reply).toString('latin1'))}`),
    );
  }

  private onError(err: NodeJS.ErrnoException): void {
    if (this.outcome !== null) return;
    const code = err.code ?? err.message;
    if (this.state === 'connecting') this.finish(notScanned('unreachable', `connect: ${code}`));
    else this.finish(notScanned('scanner_error', `connection to clamd lost: ${code}`));
  }

  private armWriteTimer(): void {
    if (this.writeTimer !== null || this.outcome !== null) return;
    this.writeTimer = setTimeout(() => {
      this.finish(notScanned('timeout', `clamd took no bytes for ${this.limits.writeTimeoutMs} ms`));
    }, this.limits.writeTimeoutMs);
  }

  private armReplyTimer(): void {
    if (this.replyTimer !== null || this.outcome !== null) return;
    this.replyTimer = setTimeout(() => {
      this.finish(notScanned('timeout', `no reply from clamd within ${this.limits.replyTimeoutMs} ms of the end of the object`));
    }, this.limits.replyTimeoutMs);
  }

  private wakeDrain(): void {
    const r = this.resolveDrain;
    this.drain = null;
    this.resolveDrain = null;
    if (r !== null) r();
  }

  private clearTimers(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    if (this.writeTimer !== null) clearTimeout(this.writeTimer);
    if (this.replyTimer !== null) clearTimeout(this.replyTimer);
    if (this.queueTimer !== null) clearTimeout(this.queueTimer);
    this.connectTimer = this.writeTimer = this.replyTimer = this.queueTimer = null;
  }
}
