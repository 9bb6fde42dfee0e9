/**
 * The clamd adapter: a bounded pool of streaming INSTREAM scans with hard deadlines and typed outcomes.
 *
 *   const scan = scanner.begin();
 *   if (!scan.write(chunk)) await scan.waitDrain();   // as the object's bytes arrive
 *   const result = await scan.end();                  // clean | infected(signature) | not_scanned(reason)
 *
 * At most maxConcurrent scans hold a clamd connection; up to maxQueued more wait (each at most queueTimeoutMs)
 * with their bytes buffered; past that begin() returns a scan already ended as not_scanned(overloaded).
 * Every outcome is counted in `counters`.
 */
import { parseClamdAddress, type ClamdAddress } from './address.js';
import { clamdCommand } from './command.js';
import { InstreamScan, type InstreamLimits, type Scan } from './instream.js';
import { newScanCounters, notScanned, type ScanCounters } from './result.js';

export type { Scan } from './instream.js';

/** Connect deadline: clamd is local or in the same subnet; a refused or missing socket fails at once anyway. */
export const CONNECT_TIMEOUT_MS = 1000;
/** Longest clamd may leave written bytes untaken (clamd spools INSTREAM to a temp file as it reads). */
export const WRITE_TIMEOUT_MS = 2000;
/** Longest from the flushed end-of-object to clamd's verdict (clamd scans the whole object only then). */
export const REPLY_TIMEOUT_MS = 10_000;
/**
 * Object size limit: bytes past it are not sent and the object is not_scanned(size_limit) unless its prefix is
 * infected. Keep it at or below clamd's StreamMaxLength, MaxFileSize and MaxScanSize: clamd says "OK" for what
 * lies past MaxFileSize/MaxScanSize unless AlertExceedsMax is set. Debian's generated clamd.conf: StreamMaxLength 25M,
 * MaxFileSize 25M, MaxScanSize 100M.
 */
export const MAX_OBJECT_BYTES = 20 * 1024 * 1024; // 20 MiB
/** write() returns false above this many bytes not yet taken by the kernel. */
export const SCAN_HIGH_WATER_BYTES = 256 * 1024; // 256 KiB
/** A scan with more bytes than this waiting for clamd ends as not_scanned(overloaded). */
export const SCAN_MAX_BUFFERED_BYTES = 4 * 1024 * 1024; // 4 MiB
/**
 * Concurrent clamd connections. clamd reads every INSTREAM connection in its one poll loop and takes a scan thread
 * (MaxThreads) only for the verdict, so streams in progress do not use up its threads.
 */
export const MAX_CONCURRENT_SCANS = 32;
/** Scans waiting for a connection; the next one is refused as overloaded. */
export const MAX_QUEUED_SCANS = 256;
/** Longest a scan waits for a connection before it is not_scanned(overloaded). */
export const QUEUE_TIMEOUT_MS = 2000;
/** Deadline for PING / VERSION (connect and reply together). */
export const COMMAND_TIMEOUT_MS = 2000;

export interface ScannerOptions extends InstreamLimits {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

export const DEFAULT_SCANNER_OPTIONS: Readonly<ScannerOptions> = Object.freeze({
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  writeTimeoutMs: WRITE_TIMEOUT_MS,
  replyTimeoutMs: REPLY_TIMEOUT_MS,
  maxObjectBytes: MAX_OBJECT_BYTES,
  highWaterBytes: SCAN_HIGH_WATER_BYTES,
  maxBufferedBytes: SCAN_MAX_BUFFERED_BYTES,
  maxConcurrent: MAX_CONCURRENT_SCANS,
  maxQueued: MAX_QUEUED_SCANS,
  queueTimeoutMs: QUEUE_TIMEOUT_MS,
  commandTimeoutMs: COMMAND_TIMEOUT_MS,
});

export class ScannerOptionsError extends Error {
  readonly code = 'GWI_ERR_SCANNER_OPTIONS';
  constructor(message: string) {
    super(message);
    this.name = 'ScannerOptionsError';
  }
}

function checkOptions(o: ScannerOptions): void {
  for (const [name, v] of Object.entries(o)) {
    if (!Number.isSafeInteger(v) || v < 0) throw new ScannerOptionsError(`scanner option ${name} must be a non-negative integer, got ${String(v)}`);
  }
  if (o.maxConcurrent < 1) throw new ScannerOptionsError('scanner option maxConcurrent must be at least 1');
  if (o.maxObjectBytes < 1 || o.maxObjectBytes > 0xffffffff) throw new ScannerOptionsError('scanner option maxObjectBytes must be 1 to 2^32-1');
  if (o.highWaterBytes > o.maxBufferedBytes) throw new ScannerOptionsError('scanner option highWaterBytes must not exceed maxBufferedBytes');
}

export class ClamdScanner {
  readonly address: ClamdAddress;
  readonly options: Readonly<ScannerOptions>;
  readonly counters: ScanCounters = newScanCounters();
  private readonly waiting: InstreamScan[] = [];

  constructor(address: ClamdAddress | string, options: Partial<ScannerOptions> = {}) {
    this.address = typeof address === 'string' ? parseClamdAddress(address) : address;
    const o = { ...DEFAULT_SCANNER_OPTIONS, ...options };
    checkOptions(o);
    this.options = Object.freeze(o);
  }

  begin(): Scan {
    const c = this.counters;
    c.scans++;
    const scan = new InstreamScan(this.address, this.options, c, (s) => this.release(s));
    if (c.active < this.options.maxConcurrent) {
      c.active++;
      scan.hasSlot = true;
      scan.connect();
    } else if (this.waiting.length < this.options.maxQueued) {
      this.waiting.push(scan);
      c.queued++;
      scan.enqueue(this.options.queueTimeoutMs);
    } else {
      scan.finish(notScanned('overloaded', `${this.options.maxConcurrent} scans running and ${this.options.maxQueued} waiting`));
    }
    return scan;
  }

  /** True when clamd answers PONG; throws ClamdCommandError otherwise. Proves reachability only (see ClamdCanary). */
  async ping(): Promise<boolean> {
    return (await clamdCommand(this.address, 'zPING\0', this.options.commandTimeoutMs)) === 'PONG';
  }

  /** clamd's version line, e.g. "ClamAV 1.4.6/27000/Tue Dec  1 09:00:00 2026" (engine/database version/date). */
  version(): Promise<string> {
    return clamdCommand(this.address, 'zVERSION\0', this.options.commandTimeoutMs);
  }

  private release(scan: InstreamScan): void {
    const c = this.counters;
    if (!scan.hasSlot) {
      // Refused, or ended while waiting (queue deadline): it never held a connection.
      const i = this.waiting.indexOf(scan);
      if (i >= 0) {
        this.waiting.splice(i, 1);
        c.queued--;
      }
      return;
    }
    scan.hasSlot = false;
    c.active--;
    while (c.active < this.options.maxConcurrent && this.waiting.length > 0) {
      const next = this.waiting.shift() as InstreamScan;
      c.queued--;
      if (!next.isQueued) continue;
      c.active++;
      next.hasSlot = true;
      next.connect();
    }
  }
}
