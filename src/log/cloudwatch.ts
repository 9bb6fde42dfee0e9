/**
 * CloudWatch Logs sink: PutLogEvents batches within the API's limits, one call in flight per stream, retries with
 * exponential backoff and full jitter on throttling, 5xx and network errors, no retry on other 4xx (counted and
 * reported to the operational log).
 *
 * PutLogEvents limits (CloudWatch Logs API reference, PutLogEvents):
 *   - "The maximum batch size is 1,048,576 bytes. This size is calculated as the sum of all event messages in
 *     UTF-8, plus 26 bytes for each log event."                         → CW_MAX_BATCH_BYTES, CW_EVENT_OVERHEAD_BYTES
 *   - "The maximum number of log events in a batch is 10,000."          → CW_MAX_BATCH_EVENTS
 *   - "A batch of log events in a single request cannot span more than 24 hours."  → CW_MAX_BATCH_SPAN_MS
 *   - "The log events in the batch must be in chronological order by their timestamp."  → stable sort per batch
 *   - event size 256 KiB (message + 26 bytes)                          → CW_MAX_EVENT_BYTES; larger ones are dropped
 *     and counted (`oversizeDropped`): a cut JSON line would be unreadable.
 * Events too old or too new for the service come back in rejectedLogEventsInfo and are counted (`rejectedEvents`).
 *
 * The log group and stream are created before the first call (ResourceAlreadyExistsException is success; a refusal
 * such as AccessDeniedException is logged once and the sink carries on, for groups made by infrastructure code).
 * A ResourceNotFoundException on PutLogEvents (stream deleted under us) creates them again and retries.
 */
import { hostname } from 'node:os';
import type { LogQueue, LogEntry } from './queue.js';
import type { LogSink } from './sinks/sink.js';
import { CloudWatchLogsClient, type LogsResponse } from './aws/logs-client.js';
import { CredentialProvider, type ImdsClient } from './aws/credentials.js';

export const CW_MAX_BATCH_EVENTS = 10_000;
export const CW_MAX_BATCH_BYTES = 1_048_576;
export const CW_EVENT_OVERHEAD_BYTES = 26;
export const CW_MAX_EVENT_BYTES = 256 * 1024;
export const CW_MAX_BATCH_SPAN_MS = 24 * 60 * 60 * 1000;
/** How long the first event of a batch may wait for others (1 s): fewer, fuller calls. */
export const CW_LINGER_MS = 1000;
/** Backoff before retry n (from 0): a random delay in [0, min(CW_RETRY_MAX_MS, CW_RETRY_BASE_MS × 2^n)). */
export const CW_RETRY_BASE_MS = 200;
export const CW_RETRY_MAX_MS = 20_000;
/** Attempts per batch before it is dropped and counted (`failedEvents`). */
export const CW_MAX_ATTEMPTS = 8;

/** Error types retried besides HTTP 5xx and network errors. */
const RETRYABLE_TYPES: ReadonlySet<string> = new Set(['ThrottlingException', 'ServiceUnavailableException', 'Throttling', 'RequestTimeout', 'RequestTimeoutException', 'LimitExceededException']);

export interface BatchLimits {
  maxEvents: number;
  maxBytes: number;
  spanMs: number;
  maxEventBytes: number;
}

export const CW_LIMITS: BatchLimits = Object.freeze({ maxEvents: CW_MAX_BATCH_EVENTS, maxBytes: CW_MAX_BATCH_BYTES, spanMs: CW_MAX_BATCH_SPAN_MS, maxEventBytes: CW_MAX_EVENT_BYTES });

/**
 * Takes the longest run from the front of `queue` that fits one PutLogEvents call, sorted by time (stable, so
 * events of the same millisecond keep their order). Entries too large for any call are removed and counted in
 * `oversize.count`.
 */
export function takeBatch(queue: LogQueue, limits: BatchLimits, oversize: { count: number }): LogEntry[] {
  const batch: LogEntry[] = [];
  let bytes = 0;
  let min = Infinity;
  let max = -Infinity;
  for (;;) {
    const e = queue.peek();
    if (e === undefined || batch.length >= limits.maxEvents) break;
    const size = e.bytes + CW_EVENT_OVERHEAD_BYTES;
    if (size > limits.maxEventBytes || size > limits.maxBytes) {
      queue.shift();
      oversize.count++;
      continue;
    }
    if (bytes + size > limits.maxBytes) break;
    if (Math.max(max, e.timeMs) - Math.min(min, e.timeMs) > limits.spanMs) break;
    queue.shift();
    batch.push(e);
    bytes += size;
    if (e.timeMs < min) min = e.timeMs;
    if (e.timeMs > max) max = e.timeMs;
  }
  batch.sort((a, b) => a.timeMs - b.timeMs);
  return batch;
}

/** Default stream name: the EC2 instance id, or hostname plus the process start time (no ':' or '*' allowed). */
export async function defaultStreamName(imds: ImdsClient | null, startMs: number): Promise<string> {
  if (imds !== null) {
    const id = await imds.instanceId().catch(() => '');
    if (/^i-[0-9a-f]{8,32}$/.test(id)) return id;
  }
  return `${hostname()}-${new Date(startMs).toISOString().replace(/[:.]/g, '-')}`;
}

export interface CloudWatchSinkOptions {
  logGroup: string;
  logStream: string;
  env: NodeJS.ProcessEnv;
  credentials?: CredentialProvider;
  /** Operational log for refusals (validation errors, access denied). */
  warn?: (msg: string, fields: Record<string, unknown>) => void;
  /** Overrides for tests; defaults are the CW_* constants. */
  limits?: BatchLimits;
  lingerMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  maxAttempts?: number;
}

export class CloudWatchLogsSink implements LogSink {
  readonly name = 'cloudwatch';
  readonly lingerMs: number;
  readonly batchBytes: number;
  readonly client: CloudWatchLogsClient;
  private readonly limits: BatchLimits;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly maxAttempts: number;
  private readonly warn: (msg: string, fields: Record<string, unknown>) => void;
  private streamReady = false;
  private closing = false;
  private wake: (() => void) | null = null;
  private readonly oversize = { count: 0 };
  private readonly counters = {
    calls: 0,
    sentEvents: 0,
    sentBytes: 0,
    retries: 0,
    throttled: 0,
    serverErrors: 0,
    networkErrors: 0,
    rejectedCalls: 0,
    rejectedEvents: 0,
    failedEvents: 0,
    createErrors: 0,
  };

  constructor(private readonly options: CloudWatchSinkOptions) {
    this.client = new CloudWatchLogsClient(options.env, options.credentials ?? new CredentialProvider(options.env));
    this.limits = options.limits ?? CW_LIMITS;
    this.lingerMs = options.lingerMs ?? CW_LINGER_MS;
    this.batchBytes = this.limits.maxBytes;
    this.retryBaseMs = options.retryBaseMs ?? CW_RETRY_BASE_MS;
    this.retryMaxMs = options.retryMaxMs ?? CW_RETRY_MAX_MS;
    this.maxAttempts = options.maxAttempts ?? CW_MAX_ATTEMPTS;
    this.warn = options.warn ?? (() => undefined);
  }

  async drain(queue: LogQueue): Promise<void> {
    if (!this.streamReady) await this.ensureStream();
    const batch = takeBatch(queue, this.limits, this.oversize);
    if (batch.length > 0) await this.put(batch);
  }

  /** Stops waiting between retries: a batch in backoff is given up (counted) so shutdown meets its deadline. */
  async close(): Promise<void> {
    this.closing = true;
    this.wake?.();
    await this.client.close();
  }

  stats(): Record<string, number> {
    return { ...this.counters, oversizeDropped: this.oversize.count };
  }

  private async ensureStream(): Promise<void> {
    const { logGroup, logStream } = this.options;
    for (const [op, input] of [
      ['CreateLogGroup', { logGroupName: logGroup }],
      ['CreateLogStream', { logGroupName: logGroup, logStreamName: logStream }],
    ] as const) {
      const res = await this.client.call(op, input);
      if (res.status === 200 || res.errorType === 'ResourceAlreadyExistsException') continue;
      this.counters.createErrors++;
      this.warn('cloudwatch_create_failed', { operation: op, logGroup, logStream, status: res.status, type: res.errorType, message: res.message });
    }
    this.streamReady = true;
  }

  private async put(batch: LogEntry[]): Promise<void> {
    const input = {
      logGroupName: this.options.logGroup,
      logStreamName: this.options.logStream,
      logEvents: batch.map((e) => ({ timestamp: e.timeMs, message: e.line })),
    };
    let bytes = 0;
    for (const e of batch) bytes += e.bytes + CW_EVENT_OVERHEAD_BYTES;
    for (let attempt = 0; ; attempt++) {
      const res = await this.client.call('PutLogEvents', input);
      this.counters.calls++;
      if (res.status === 200) {
        this.counters.sentEvents += batch.length;
        this.counters.sentBytes += bytes;
        this.countRejected(res, batch.length);
        return;
      }
      const retry = this.classify(res);
      if (retry === 'no') {
        this.counters.rejectedCalls++;
        this.counters.rejectedEvents += batch.length;
        this.warn('cloudwatch_put_rejected', { status: res.status, type: res.errorType, message: res.message, events: batch.length });
        return;
      }
      if (retry === 'recreate') this.streamReady = false;
      if (attempt + 1 >= this.maxAttempts || this.closing) {
        this.counters.failedEvents += batch.length;
        this.warn('cloudwatch_put_failed', { status: res.status, type: res.errorType, message: res.message, events: batch.length, attempts: attempt + 1 });
        return;
      }
      this.counters.retries++;
      await this.backoff(attempt);
      if (!this.streamReady) await this.ensureStream();
    }
  }

  private classify(res: LogsResponse): 'yes' | 'no' | 'recreate' {
    if (res.status === 0) {
      this.counters.networkErrors++;
      return 'yes';
    }
    if (res.status >= 500) {
      this.counters.serverErrors++;
      return 'yes';
    }
    if (res.status === 429 || RETRYABLE_TYPES.has(res.errorType)) {
      this.counters.throttled++;
      return 'yes';
    }
    if (res.errorType === 'ResourceNotFoundException') return 'recreate';
    return 'no';
  }

  private countRejected(res: LogsResponse, n: number): void {
    const info = res.body.rejectedLogEventsInfo as { tooNewLogEventStartIndex?: number; tooOldLogEventEndIndex?: number; expiredLogEventEndIndex?: number } | undefined;
    if (info === undefined) return;
    let rejected = 0;
    const oldEnd = Math.max(info.tooOldLogEventEndIndex ?? -1, info.expiredLogEventEndIndex ?? -1);
    if (oldEnd >= 0) rejected += oldEnd + 1;
    if (info.tooNewLogEventStartIndex !== undefined && info.tooNewLogEventStartIndex >= 0) rejected += n - info.tooNewLogEventStartIndex;
    rejected = Math.min(rejected, n);
    this.counters.rejectedEvents += rejected;
    this.counters.sentEvents -= rejected;
  }

  private backoff(attempt: number): Promise<void> {
    const delay = Math.random() * Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** attempt);
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, delay);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).finally(() => (this.wake = null));
  }
}
