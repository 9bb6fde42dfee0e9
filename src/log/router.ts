/**
 * LogRouter: takes verdict log events off the data plane and fans them out to the sinks, never blocking.
 *
 *   producer ──emit()──> stamp (time, appliance, policy) ─> limiter (per key) ─> JSON.stringify once
 *        ─> one bounded queue per sink (bytes) ─> pump: sink.drain(queue), one call in flight per sink
 *
 * emit() is synchronous and O(1): it never waits for a sink. When a sink's queue is full the event is dropped for
 * that sink and counted (`queueFull`); other sinks still get it. close() offers what is queued to every sink until
 * a deadline, then counts the rest as `droppedAtShutdown`.
 */
import { performance } from 'node:perf_hooks';
import type { LogEvent } from './schema.js';
import { LOG_SCHEMA_VERSION, LogEventSchema } from './schema.js';
import { LogLimiter, type KeyCounts } from './limiter.js';
import { LogQueue, type LogEntry } from './queue.js';
import type { LogSink } from './sinks/sink.js';

type StampKeys = 'schemaVersion' | 'time' | 'timeMs' | 'applianceId' | 'policyVersion' | 'suppressed';
/** An event as a producer gives it, without the common fields the router stamps. */
export type UnstampedEvent = LogEvent extends infer E ? (E extends LogEvent ? Omit<E, StampKeys> : never) : never;

/** Kinds thinned by sampling (high volume); the others are only rate-limited, and control events never. */
const SAMPLED_KINDS: ReadonlySet<string> = new Set(['flow_verdict', 'flow_summary']);
const UNLIMITED_KINDS: ReadonlySet<string> = new Set(['policy_reload', 'scanner_state', 'metrics']);

export interface RouterOptions {
  sinks: LogSink[];
  /** Cap of each sink's queue, bytes of serialized events. */
  queueBytes: number;
  ratePerS: number;
  sampleEvery: number;
  applianceId: string;
  /** Validate each written event against the schema (tests; costs a few µs per event). */
  validate?: boolean;
  /** Wall clock, epoch ms. */
  wallNow?: () => number;
  /** Monotonic clock for rate limits, ms. */
  monoNow?: () => number;
  /** Where sink failures are reported (the operational log). */
  onSinkError?: (sink: string, err: unknown) => void;
}

class Pump {
  readonly queue: LogQueue;
  busy = false;
  timer: NodeJS.Timeout | undefined = undefined;
  /** Monotonic ms when the oldest waiting entry arrived (approximate after a partial drain). */
  waitingSinceMs = 0;
  queueFull = 0;
  sinkErrors = 0;
  droppedAtShutdown = 0;
  idle: (() => void) | undefined = undefined;

  constructor(
    readonly sink: LogSink,
    queueBytes: number,
  ) {
    this.queue = new LogQueue(queueBytes);
  }
}

export class LogRouter {
  readonly limiter: LogLimiter;
  private readonly pumps: Pump[];
  private readonly wallNow: () => number;
  private readonly monoNow: () => number;
  private flushing = false;
  private closed = false;
  policyVersion: string | null = null;
  /** The instance's Auto Scaling group (EMF dimension), when instance metadata told it. */
  autoScalingGroup: string | null = null;
  private readonly applianceIdJson: string;
  emitted = 0;
  /** Events that passed the limits and were offered to the sinks. */
  written = 0;
  invalid = 0;

  constructor(private readonly options: RouterOptions) {
    this.limiter = new LogLimiter({ ratePerS: options.ratePerS, sampleEvery: options.sampleEvery });
    this.pumps = options.sinks.map((s) => new Pump(s, options.queueBytes));
    this.wallNow = options.wallNow ?? Date.now;
    this.monoNow = options.monoNow ?? (() => performance.now());
    this.applianceIdJson = JSON.stringify(options.applianceId);
  }

  /**
   * Offers one event (`timeMs`: when it happened, epoch ms; default now; `suppressedUpstream`: events the producer's
   * own limiter left out, added to `suppressed`). Returns whether it was written to at least one sink's queue.
   * Never waits.
   */
  emit(event: UnstampedEvent, timeMs: number = this.wallNow(), suppressedUpstream = 0): boolean {
    this.emitted++;
    if (this.closed) return false;
    const key = limiterKey(event);
    let suppressed = suppressedUpstream;
    if (key !== null) {
      if (this.limiter.decide(key, SAMPLED_KINDS.has(event.kind), this.monoNow()) !== 'write') return false;
      suppressed += this.limiter.takeSuppressed(key);
    }
    const ms = Math.floor(timeMs);
    // The common fields are written as a JSON prefix rather than spread into a copy of the event: copying an
    // object of ~30 fields costs far more than serializing it.
    const line =
      `{"schemaVersion":${LOG_SCHEMA_VERSION},"time":"${new Date(ms).toISOString()}","timeMs":${ms},` +
      `"applianceId":${this.applianceIdJson},"policyVersion":${this.policyVersion === null ? 'null' : JSON.stringify(this.policyVersion)},` +
      `"suppressed":${suppressed},${JSON.stringify(event).slice(1)}`;
    if (this.options.validate === true && !LogEventSchema.safeParse(JSON.parse(line)).success) {
      this.invalid++;
      return false;
    }
    this.written++;
    const entry: LogEntry = { line, bytes: Buffer.byteLength(line), timeMs: ms };
    let queued = false;
    for (const p of this.pumps) {
      if (p.queue.push(entry)) {
        if (p.queue.length === 1 && !p.busy) p.waitingSinceMs = this.monoNow();
        queued = true;
        this.kick(p);
      } else {
        p.queueFull++;
      }
    }
    return queued;
  }

  /**
   * Offers everything queued to the sinks, waits at most `deadlineMs`, then counts what is left as
   * droppedAtShutdown and closes the sinks. Later emits are refused.
   */
  async close(deadlineMs: number): Promise<void> {
    this.closed = true;
    this.flushing = true;
    const drained = Promise.all(
      this.pumps.map(
        (p) =>
          new Promise<void>((resolve) => {
            p.idle = resolve;
            this.kick(p);
            if (!p.busy && p.queue.length === 0) resolve();
          }),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise<void>((r) => (timer = setTimeout(r, deadlineMs)))]);
    clearTimeout(timer);
    for (const p of this.pumps) {
      if (p.timer !== undefined) clearTimeout(p.timer);
      p.droppedAtShutdown += p.queue.clear();
    }
    await Promise.all(this.pumps.map((p) => p.sink.close().catch((err: unknown) => this.options.onSinkError?.(p.sink.name, err))));
  }

  stats(): Record<string, unknown> {
    const sinks: Record<string, unknown> = {};
    for (const p of this.pumps) {
      sinks[p.sink.name] = {
        queued: p.queue.length,
        queueBytes: p.queue.bytes,
        queueFull: p.queueFull,
        sinkErrors: p.sinkErrors,
        droppedAtShutdown: p.droppedAtShutdown,
        ...p.sink.stats(),
      };
    }
    return { emitted: this.emitted, written: this.written, rateLimited: this.limiter.rateLimited, sampledOut: this.limiter.sampledOut, invalid: this.invalid, sinks };
  }

  keyCounts(): KeyCounts[] {
    return this.limiter.counts();
  }

  private kick(p: Pump): void {
    if (p.busy) return;
    if (p.queue.length === 0) {
      p.idle?.();
      return;
    }
    if (!this.flushing && p.queue.bytes < p.sink.batchBytes) {
      const waited = this.monoNow() - p.waitingSinceMs;
      if (waited < p.sink.lingerMs) {
        if (p.timer === undefined) {
          p.timer = setTimeout(() => {
            p.timer = undefined;
            this.kick(p);
          }, p.sink.lingerMs - waited);
          p.timer.unref();
        }
        return;
      }
    }
    if (p.timer !== undefined) {
      clearTimeout(p.timer);
      p.timer = undefined;
    }
    p.busy = true;
    // Next turn of the event loop: the events emitted in this one go out together, and emit() returns at once.
    setImmediate(() => void this.run(p));
  }

  private async run(p: Pump): Promise<void> {
    try {
      await p.sink.drain(p.queue);
    } catch (err) {
      p.sinkErrors++;
      this.options.onSinkError?.(p.sink.name, err);
    }
    p.busy = false;
    p.waitingSinceMs = this.monoNow();
    this.kick(p);
  }
}

/** Limiter key: kind, stage and what decided (rule, signature, detector, code, or reason); null = never limited. */
export function limiterKey(e: UnstampedEvent): string | null {
  if (UNLIMITED_KINDS.has(e.kind)) return null;
  switch (e.kind) {
    case 'anomaly':
      return `anomaly|${e.stage}|${e.code}`;
    case 'flow_verdict':
    case 'content_finding':
    case 'flow_summary':
      return `${e.kind}|${e.stage}|${e.action}|${e.rule ?? e.signature ?? e.detector ?? e.reason}`;
    default:
      return null;
  }
}
