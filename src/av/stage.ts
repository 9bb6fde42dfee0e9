/**
 * The inline antivirus stage (docs/antivirus.md): a content stage (src/pipeline/content.ts) that streams each
 * object's body to clamd as it arrives and holds only the object's tail until the verdict, so an infected object
 * is never delivered whole (docs/architecture.md §3).
 *
 *   onObjectStart  scope, direction, Host and Content-Type skips; the request's Host/target name its response
 *   onBody         first byte: begin a clamd INSTREAM scan (bodyless objects cost no connection); copy the bytes
 *                  (coalesced into AV_COALESCE_BYTES frames), hash them (SHA-256), write them; past
 *                  max_object_bytes stop writing and take the verdict on the prefix
 *   onObjectEnd    pin: cleared offset = view.chunkStart (the packet completing the object waits), end the scan
 *   answer         clean → unpin (cleared = the next pending object's pin, or CLEARED_ALL); infected → decide
 *                  reject|drop and log a content_finding; not scanned → the reason's fail mode (open: unpin and
 *                  log; closed: decide drop) — never logged as clean
 *
 * Backpressure: clamd takes bytes slower than a LAN delivers them. When a scan has more than the adapter's
 * high-water mark waiting, the direction is pinned at the end of the current chunk until clamd drains, so the
 * sender is slowed by TCP instead of the bytes piling up here (the adapter ends a scan past maxBufferedBytes as
 * overloaded, and the hold budgets bound the wait). Alert mode never pins and never decides: it only logs.
 */
import { createHash, type Hash } from 'node:crypto';
import { ACTION, type Action } from '../pipeline/stage.js';
import { CLEARED_ALL, contentFlowFields, type ContentFlowMeta, type ContentFlowView, type ContentStage, type ContentStageContext, type StageHealth } from '../pipeline/content.js';
import { HTTP_END, HTTP_MAX_PIPELINE, HTTP_OBJECT, type HttpEndReason, type HttpHead, type HttpObjectKind } from '../stream/http1.js';
import { MAX_TEXT_CHARS } from '../log/schema.js';
import { ClamdCanary, type CanaryOptions, type CanaryState, type CanaryStatus } from './canary.js';
import { ClamdScanner, type Scan, type ScannerOptions } from './clamd.js';
import {
  antivirusDefaults,
  AV_MAX_OBJECT_BYTES_LIMIT,
  contentTypeSkipped,
  effectiveAntivirus,
  hostName,
  hostSkipped,
  type AntivirusScopeSection,
  type AntivirusSection,
  type EffectiveAntivirus,
  type FailMode,
} from './policy.js';
import type { NotScannedReason, ScanResult } from './result.js';

/** Body bytes copied into one buffer before they go to clamd as one INSTREAM frame (fewer frames for small segments). */
export const AV_COALESCE_BYTES = 16 * 1024; // 16 KiB
/** Objects of one direction awaiting a verdict at once (pipelined HTTP); past it an object is not scanned (overloaded). */
export const AV_MAX_PENDING_OBJECTS = HTTP_MAX_PIPELINE;
/** Requests remembered per flow to name their responses (HTTP pipelining depth). */
export const AV_MAX_REMEMBERED_REQUESTS = HTTP_MAX_PIPELINE;

/** Why the stage did not fully scan an object: the adapter's reasons, and `incomplete` (gap, truncation, framing). */
export type AvNotScannedReason = NotScannedReason | 'incomplete';
export const AV_NOT_SCANNED_REASONS: readonly AvNotScannedReason[] = ['size_limit', 'timeout', 'unreachable', 'protocol_error', 'scanner_error', 'overloaded', 'incomplete'];

/** Which policy fail mode governs a not-scanned reason (docs/antivirus.md, "Fail modes"). */
export function failModeFor(cfg: EffectiveAntivirus, reason: AvNotScannedReason): FailMode {
  switch (reason) {
    case 'size_limit':
      return cfg.onOversize;
    case 'timeout':
      return cfg.onTimeout;
    case 'incomplete':
      return cfg.onIncomplete;
    default:
      return cfg.onScannerError;
  }
}

/** The policy the stage runs: the top-level section and each scope's override (null: none), by scope name. */
export interface AntivirusStageConfig {
  readonly section: AntivirusSection | null;
  readonly scopes: ReadonlyMap<string, AntivirusScopeSection | null>;
}

/** The parts of a loaded policy (src/policy/load.ts LoadedPolicy) the stage reads. */
export interface AntivirusPolicySource {
  readonly antivirus: AntivirusSection | null;
  readonly scopes: readonly { readonly name: string; readonly antivirus: AntivirusScopeSection | null }[];
}

/** The stage's configuration from a loaded policy (for the chain: create and reconfigure). */
export function antivirusStageConfig(policy: AntivirusPolicySource): AntivirusStageConfig {
  return { section: policy.antivirus, scopes: new Map(policy.scopes.map((s) => [s.name, s.antivirus])) };
}

/** Whether any scope of the policy enables antivirus (the chain builds the stage only then). */
export function antivirusEnabled(policy: AntivirusPolicySource): boolean {
  // The default scope never overrides the top level, so a top level that enables it enables at least that scope.
  return (policy.antivirus?.enabled ?? false) || policy.scopes.some((s) => s.antivirus?.enabled === true);
}

/** For tests and the bench: adapter deadlines and pool, canary timing. The chain uses the defaults. */
export interface AntivirusStageOptions {
  readonly scanner: Partial<ScannerOptions>;
  readonly canary: Partial<CanaryOptions>;
}

/** Counters under `stages.antivirus` (fixed shape). */
export type AntivirusCounters = {
  /** Objects with a body in a scanned direction, not skipped. */
  objects: number;
  scans: number;
  clean: number;
  infected: number;
  not_scanned_size_limit: number;
  not_scanned_timeout: number;
  not_scanned_unreachable: number;
  not_scanned_protocol_error: number;
  not_scanned_scanner_error: number;
  not_scanned_overloaded: number;
  not_scanned_incomplete: number;
  /** Not-scanned objects let through (fail open, or alert mode) / that dropped their flow (fail closed). */
  failed_open: number;
  failed_closed: number;
  skipped_content_type: number;
  skipped_domain: number;
  /** A hold budget ran out (the timeout fail mode decided). */
  hold_exceeded: number;
  /** Answers for flows that had ended (ignored). */
  late_answers: number;
  /** Body bytes written to clamd / past max_object_bytes (not scanned). */
  bytes_scanned: number;
  bytes_unscanned: number;
  /** Gauges: clamd connections in use, scans waiting for one. */
  clamd_active: number;
  clamd_queued: number;
};

function newCounters(): AntivirusCounters {
  return {
    objects: 0,
    scans: 0,
    clean: 0,
    infected: 0,
    not_scanned_size_limit: 0,
    not_scanned_timeout: 0,
    not_scanned_unreachable: 0,
    not_scanned_protocol_error: 0,
    not_scanned_scanner_error: 0,
    not_scanned_overloaded: 0,
    not_scanned_incomplete: 0,
    failed_open: 0,
    failed_closed: 0,
    skipped_content_type: 0,
    skipped_domain: 0,
    hold_exceeded: 0,
    late_answers: 0,
    bytes_scanned: 0,
    bytes_unscanned: 0,
    clamd_active: 0,
    clamd_queued: 0,
  };
}

const OBJ = {
  /** Taking body bytes. */
  STREAMING: 0,
  /** The scan was ended (object end, or the size limit): waiting for clamd's answer. */
  ENDED: 1,
  /** Answered and acted on (or abandoned): later answers change nothing. */
  DONE: 2,
} as const;

function dirName(dir: number): 'to_server' | 'to_client' {
  return dir === 0 ? 'to_server' : 'to_client';
}

interface RequestName {
  readonly host: string | null;
  readonly target: string;
}

class AvFlow {
  readonly cur: [AvObject | null, AvObject | null] = [null, null];
  /** Ended objects whose answer is awaited, per direction, in stream order. */
  readonly pending: [AvObject[], AvObject[]] = [[], []];
  /** The cleared offset last set per direction (to call setCleared only on change). */
  readonly cleared: [number, number] = [CLEARED_ALL, CLEARED_ALL];
  /** Requests not yet answered: they name the responses (pipelining order). */
  readonly requests: RequestName[] = [];
  ended = false;

  constructor(
    readonly view: ContentFlowView,
    /** The policy in force when the flow's inspection began: a reload does not change it. */
    readonly cfg: EffectiveAntivirus,
  ) {}
}

class AvObject {
  state: number = OBJ.STREAMING;
  scan: Scan | null = null;
  hash: Hash | null = null;
  /** Body bytes seen / given to clamd. */
  bytes = 0;
  scanned = 0;
  buf: Buffer | null = null;
  bufLen = 0;
  /** Pinned at this offset until the answer (−1: not pinned). */
  pin = -1;
  /** Pinned here while clamd drains (backpressure; −1: not). */
  drainPin = -1;
  /** The last write left more than the adapter's high-water mark waiting for clamd. */
  behind = false;
  draining = false;
  overLimit = false;
  /** Why the object was not seen whole (null: it was), and in words. */
  incomplete: 'size_limit' | 'incomplete' | null = null;
  incompleteDetail = '';
  /** A hold budget ran out while it was pinned: already logged as not scanned (timeout), no longer pinned. */
  released = false;

  constructor(
    readonly flow: AvFlow,
    readonly dir: number,
    readonly name: string | null,
  ) {}
}

function header(head: HttpHead, name: string): string | null {
  for (const [n, v] of head.headers) if (n === name) return v;
  return null;
}

function clip(s: string): string {
  return s.length <= MAX_TEXT_CHARS ? s : s.slice(0, MAX_TEXT_CHARS);
}

/** File name or URL path for the log: `host/path` for origin-form targets, the target itself otherwise. */
function objectName(host: string | null, target: string): string | null {
  if (target === '') return null;
  return clip(host !== null && target.startsWith('/') ? `${hostName(host)}${target}` : target);
}

function endReasonWords(reason: HttpEndReason): string {
  switch (reason) {
    case HTTP_END.TRUNCATED:
      return 'the stream ended inside the object';
    case HTTP_END.GAP:
      return 'a gap in the stream inside the object';
    case HTTP_END.DEPTH:
      return 'the object reached the stream inspection depth';
    case HTTP_END.ERROR:
      return 'a framing error inside the body';
    case HTTP_END.DECODE_LIMIT:
      return 'decoding reached its output or ratio bound';
    case HTTP_END.DECODE_ERROR:
      return 'invalid compressed data';
    default:
      return 'complete';
  }
}

interface Compiled {
  readonly top: EffectiveAntivirus;
  readonly byScope: ReadonlyMap<string, EffectiveAntivirus>;
  readonly blocking: boolean;
  readonly anyEnabled: boolean;
  /** Some enabled scope blocks unscanned objects when clamd is down (health: down rather than degraded). */
  readonly failClosedOnScanner: boolean;
  readonly holdBudgetBytes: number;
  readonly holdBudgetMs: number;
}

function compile(config: AntivirusStageConfig): Compiled {
  const section = config.section ?? antivirusDefaults();
  const top = effectiveAntivirus(section, null);
  const byScope = new Map<string, EffectiveAntivirus>();
  for (const [name, scope] of config.scopes) byScope.set(name, effectiveAntivirus(section, scope));
  const all = [top, ...byScope.values()].filter((c) => c.enabled);
  return {
    top,
    byScope,
    blocking: all.some((c) => c.block),
    anyEnabled: all.length > 0,
    failClosedOnScanner: all.some((c) => c.block && c.onScannerError === 'closed'),
    holdBudgetBytes: section.hold_budget_bytes,
    holdBudgetMs: section.hold_budget_ms,
  };
}

export class AntivirusStage implements ContentStage {
  readonly name = 'antivirus';
  readonly scanner: ClamdScanner;
  readonly canary: ClamdCanary;
  private compiled: Compiled;
  private readonly flows = new Map<ContentFlowView, AvFlow>();
  private readonly c: AntivirusCounters = newCounters();
  /** A scanner_state event was written (the first one says previous: unknown). */
  private stateLogged = false;

  constructor(
    config: AntivirusStageConfig,
    /** The --clamd address: unix:/path or tcp:host:port. */
    clamd: string,
    private readonly ctx: ContentStageContext,
    options: Partial<AntivirusStageOptions> = {},
  ) {
    this.compiled = compile(config);
    // The stage enforces each scope's max_object_bytes itself; the adapter's limit is only the outer bound.
    this.scanner = new ClamdScanner(clamd, { ...options.scanner, maxObjectBytes: AV_MAX_OBJECT_BYTES_LIMIT });
    this.canary = new ClamdCanary(this.scanner, options.canary ?? {}, (status, previous) => this.logState(status, previous));
  }

  get blocking(): boolean {
    return this.compiled.blocking;
  }

  get holdBudgetBytes(): number {
    return this.compiled.holdBudgetBytes;
  }

  get holdBudgetMs(): number {
    return this.compiled.holdBudgetMs;
  }

  get counters(): Readonly<AntivirusCounters> {
    this.c.clamd_active = this.scanner.counters.active;
    this.c.clamd_queued = this.scanner.counters.queued;
    return this.c;
  }

  /** A policy reload: new flows get the new settings; flows already under inspection finish under the old ones. */
  reconfigure(config: AntivirusStageConfig): void {
    this.compiled = compile(config);
  }

  /** Starts the canary and resolves after its first check (bounded by the adapter's deadlines). */
  async start(): Promise<void> {
    this.canary.start();
    const status = await this.canary.check();
    if (!this.stateLogged) this.logState(status, 'unknown');
  }

  async stop(): Promise<void> {
    this.canary.stop();
  }

  /** clamd per the fail mode: a fail-closed scope without a detecting clamd is down, a fail-open one degraded. */
  health(): StageHealth {
    const k = this.compiled;
    if (!k.anyEnabled) return { state: 'up', detail: 'antivirus is not enabled in any scope' };
    const s = this.canary.status();
    if (s.state === 'up') return { state: 'up', detail: `clamd detects the test object (${s.reason})` };
    const why = `clamd canary ${s.state}: ${s.reason}`;
    if (s.state === 'down' && k.failClosedOnScanner) return { state: 'down', detail: `${why}; unscanned objects are blocked (on_scanner_error: closed)` };
    return { state: 'degraded', detail: s.state === 'down' ? `${why}; unscanned objects pass (on_scanner_error: open)` : why };
  }

  wants(meta: ContentFlowMeta): boolean {
    const cfg = this.configFor(meta.scopeName);
    return cfg.enabled && (cfg.toServer || cfg.toClient) && (cfg.ports === null || cfg.ports.has(meta.serverPort));
  }

  onObjectStart(view: ContentFlowView, dir: number, kind: HttpObjectKind, head: HttpHead | null): void {
    const flow = this.flowOf(view);
    if (flow === null) return;
    const previous = flow.cur[dir];
    if (previous != null && previous.state === OBJ.STREAMING) this.onObjectEnd(view, dir, HTTP_END.TRUNCATED);
    let host: string | null = null;
    let name: string | null = null;
    if (head !== null && kind === HTTP_OBJECT.REQUEST) {
      host = header(head, 'host');
      if (flow.requests.length >= AV_MAX_REMEMBERED_REQUESTS) flow.requests.shift();
      flow.requests.push({ host, target: head.target });
      name = objectName(host, head.target);
    } else if (head !== null && kind === HTTP_OBJECT.RESPONSE) {
      // Interim responses (1xx but 101) precede the final one to the same request (RFC 9110 §15.2).
      const interim = head.status >= 100 && head.status < 200 && head.status !== 101;
      const req = interim ? undefined : flow.requests.shift();
      if (req !== undefined) {
        host = req.host;
        name = objectName(req.host, req.target);
      }
    }
    const cfg = flow.cfg;
    if (dir === 0 ? !cfg.toServer : !cfg.toClient) return;
    if (head !== null && head.bodyless) return;
    if (hostSkipped(cfg, host)) {
      this.c.skipped_domain++;
      return;
    }
    if (head !== null && kind === HTTP_OBJECT.RESPONSE && contentTypeSkipped(cfg, header(head, 'content-type'))) {
      this.c.skipped_content_type++;
      return;
    }
    flow.cur[dir] = new AvObject(flow, dir, name);
  }

  onBody(view: ContentFlowView, dir: number, data: Uint8Array): void {
    const flow = this.flows.get(view);
    if (flow === undefined) return;
    const o = flow.cur[dir];
    if (o == null || data.length === 0) return;
    if (o.state !== OBJ.STREAMING) {
      if (o.overLimit) this.c.bytes_unscanned += data.length;
      return;
    }
    if (o.scan === null) this.beginScan(o);
    o.bytes += data.length;
    const room = flow.cfg.maxObjectBytes - o.scanned;
    const n = Math.min(data.length, room);
    if (n > 0) {
      const part = n === data.length ? data : data.subarray(0, n);
      (o.hash as Hash).update(part);
      this.append(o, part);
      o.scanned += n;
      this.c.bytes_scanned += n;
    }
    if (n < data.length) {
      this.c.bytes_unscanned += data.length - n;
      this.overLimit(o);
      return;
    }
    if (o.behind && o.state === OBJ.STREAMING && flow.cfg.block) this.backpressure(o);
  }

  onObjectEnd(view: ContentFlowView, dir: number, reason: HttpEndReason): void {
    const flow = this.flows.get(view);
    if (flow === undefined) return;
    const o = flow.cur[dir];
    flow.cur[dir] = null;
    if (o == null) return;
    if (o.state !== OBJ.STREAMING) return;
    if (o.scan === null) {
      // No body byte arrived: nothing to scan, no clamd connection was taken.
      o.state = OBJ.DONE;
      return;
    }
    if (reason === HTTP_END.DEPTH || reason === HTTP_END.DECODE_LIMIT) {
      o.incomplete = 'size_limit';
      o.incompleteDetail = endReasonWords(reason);
    } else if (reason !== HTTP_END.COMPLETE && reason !== HTTP_END.STREAM_END) {
      o.incomplete = 'incomplete';
      o.incompleteDetail = endReasonWords(reason);
    }
    this.flush(o);
    o.drainPin = -1;
    o.state = OBJ.ENDED;
    const scan = o.scan;
    if (flow.cfg.block) {
      const pending = flow.pending[dir] as AvObject[];
      if (pending.length >= AV_MAX_PENDING_OBJECTS) {
        this.notScanned(o, 'overloaded', `${AV_MAX_PENDING_OBJECTS} objects of this direction already wait for a verdict`);
        o.state = OBJ.DONE;
      } else {
        o.pin = view.chunkStart;
        pending.push(o);
      }
    }
    void scan.end();
    this.updateCleared(flow, dir);
  }

  onHoldExceeded(view: ContentFlowView, dir: number, budget: 'bytes' | 'ms'): Action {
    const flow = this.flows.get(view);
    if (flow === undefined) return ACTION.PASS;
    const cfg = flow.cfg;
    const fail = cfg.onTimeout;
    this.c.hold_exceeded++;
    const words = budget === 'ms' ? `hold budget of ${this.compiled.holdBudgetMs} ms ran out` : `hold budget of ${this.compiled.holdBudgetBytes} bytes ran out`;
    const pending = flow.pending[dir] as AvObject[];
    for (const o of pending) {
      o.pin = -1;
      o.released = true;
      this.countNotScanned('timeout', fail);
      this.logNotScanned(o, 'timeout', `${words} waiting for clamd's verdict`, fail === 'open' ? 'pass' : 'drop');
    }
    pending.length = 0;
    const cur = flow.cur[dir];
    if (cur != null && cur.drainPin >= 0) {
      cur.drainPin = -1;
      if (fail === 'closed') this.logNotScanned(cur, 'timeout', `${words} waiting for clamd to take the object's bytes`, 'drop');
    }
    // PASS clears this stage's offsets for the direction (the contract); DROP ends the flow.
    flow.cleared[dir] = CLEARED_ALL;
    return fail === 'open' ? ACTION.PASS : ACTION.DROP;
  }

  onFlowEnd(view: ContentFlowView): void {
    const flow = this.flows.get(view);
    if (flow === undefined) return;
    this.flows.delete(view);
    flow.ended = true;
    for (let dir = 0; dir < 2; dir++) {
      const o = flow.cur[dir];
      if (o != null && o.state === OBJ.STREAMING && o.scan !== null) {
        // Frees the clamd connection now rather than at clamd's ReadTimeout; the answer is ignored.
        o.state = OBJ.DONE;
        void o.scan.end();
      }
      flow.cur[dir] = null;
      (flow.pending[dir] as AvObject[]).length = 0;
    }
    flow.requests.length = 0;
  }

  // ---- per object ---------------------------------------------------------------------------------------

  private configFor(scopeName: string): EffectiveAntivirus {
    return this.compiled.byScope.get(scopeName) ?? this.compiled.top;
  }

  private flowOf(view: ContentFlowView): AvFlow | null {
    const known = this.flows.get(view);
    if (known !== undefined) return known;
    if (view.closed || view.decided) return null;
    const cfg = this.configFor(view.meta.scopeName);
    if (!cfg.enabled) return null;
    const flow = new AvFlow(view, cfg);
    this.flows.set(view, flow);
    return flow;
  }

  private beginScan(o: AvObject): void {
    this.c.objects++;
    this.c.scans++;
    const scan = this.scanner.begin();
    o.scan = scan;
    o.hash = createHash('sha256');
    void scan.result.then((r) => this.settle(o, r));
  }

  /** Copies `data` (valid only during the event) into the object's frame buffer; full frames go to clamd. */
  private append(o: AvObject, data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      if (o.buf === null) {
        if (data.length - off >= AV_COALESCE_BYTES) {
          this.write(o, Buffer.from(data.subarray(off)));
          return;
        }
        o.buf = Buffer.allocUnsafe(AV_COALESCE_BYTES);
        o.bufLen = 0;
      }
      const k = Math.min(AV_COALESCE_BYTES - o.bufLen, data.length - off);
      o.buf.set(data.subarray(off, off + k), o.bufLen);
      o.bufLen += k;
      off += k;
      if (o.bufLen === AV_COALESCE_BYTES) this.flush(o);
    }
  }

  private flush(o: AvObject): void {
    const buf = o.buf;
    if (buf === null) return;
    o.buf = null;
    if (o.bufLen > 0) this.write(o, buf.subarray(0, o.bufLen));
    o.bufLen = 0;
  }

  private write(o: AvObject, frame: Buffer): void {
    o.behind = !(o.scan as Scan).write(frame);
  }

  /**
   * When clamd has more than the adapter's high-water mark waiting, pin the direction at the end of this chunk
   * until it drains: the sender slows down instead of the bytes piling up (maxBufferedBytes would end the scan).
   */
  private backpressure(o: AvObject): void {
    const scan = o.scan as Scan;
    if (o.draining) return;
    o.draining = true;
    o.drainPin = o.flow.view.chunkEnd;
    this.updateCleared(o.flow, o.dir);
    void scan.waitDrain().then(() => {
      o.draining = false;
      o.behind = false;
      if (o.drainPin < 0 || o.flow.ended) return;
      o.drainPin = -1;
      this.updateCleared(o.flow, o.dir);
    });
  }

  /** The object passed max_object_bytes: the prefix is all clamd sees. */
  private overLimit(o: AvObject): void {
    const flow = o.flow;
    o.overLimit = true;
    this.flush(o);
    o.drainPin = -1;
    o.state = OBJ.ENDED;
    void (o.scan as Scan).end();
    const detail = `object larger than max_object_bytes (${flow.cfg.maxObjectBytes} bytes)`;
    if (flow.cfg.block && flow.cfg.onOversize === 'closed') {
      // Blocked either way (infected prefix or not scanned): decide now, before more of the object goes out.
      o.state = OBJ.DONE;
      this.notScanned(o, 'size_limit', detail);
    }
    this.updateCleared(flow, o.dir);
  }

  /** clamd's answer for an object (or the adapter's not-scanned outcome), whenever it comes. */
  private settle(o: AvObject, r: ScanResult): void {
    const flow = o.flow;
    if (flow.ended) {
      this.c.late_answers++;
      return;
    }
    if (o.state === OBJ.DONE) return;
    o.state = OBJ.DONE;
    o.drainPin = -1;
    const dir = o.dir;
    if (o.pin >= 0) {
      const pending = flow.pending[dir] as AvObject[];
      const i = pending.indexOf(o);
      if (i >= 0) pending.splice(i, 1);
      o.pin = -1;
    }
    if (r.kind === 'infected') {
      this.infected(o, r.signature);
    } else if (o.released) {
      // Already logged as not scanned (timeout) when the hold budget ran out; a late clean answer changes nothing.
    } else if (r.kind === 'clean') {
      if (o.overLimit) this.notScanned(o, 'size_limit', `object larger than max_object_bytes (${flow.cfg.maxObjectBytes} bytes); its first ${o.scanned} bytes were clean`);
      else if (o.incomplete !== null) this.notScanned(o, o.incomplete, `${o.incompleteDetail}; the ${o.scanned} bytes seen were clean`);
      else this.c.clean++;
    } else {
      this.notScanned(o, r.reason, r.detail);
    }
    this.updateCleared(flow, dir);
  }

  private infected(o: AvObject, signature: string): void {
    const flow = o.flow;
    const cfg = flow.cfg;
    this.c.infected++;
    const whole = !o.overLimit && o.incomplete === null;
    const sha = whole && o.hash !== null ? o.hash.digest('hex') : null;
    const action = !cfg.block ? 'alert' : cfg.reject ? 'reject' : 'drop';
    this.ctx.log({
      kind: 'content_finding',
      ...contentFlowFields(flow.view.meta),
      stage: 'av',
      action,
      rule: null,
      ruleSource: null,
      signature: clip(signature),
      detector: null,
      reason: 'av.infected',
      direction: dirName(o.dir),
      finding: { type: 'av', engine: 'clamav', signature: clip(signature), objectName: o.name, objectBytes: o.scanned, objectSha256: sha },
    });
    if (cfg.block) {
      const detail = o.released ? 'found after the hold budget ran out: the object was delivered' : undefined;
      flow.view.decide(this, cfg.reject ? ACTION.REJECT : ACTION.DROP, { reason: 'av.infected', rule: signature, dir: o.dir, ...(detail === undefined ? {} : { detail }) });
    }
  }

  /** An object not fully scanned: counted, logged with its fail mode, and decided by it. */
  private notScanned(o: AvObject, reason: AvNotScannedReason, detail: string): void {
    const cfg = o.flow.cfg;
    const fail = failModeFor(cfg, reason);
    const closed = cfg.block && fail === 'closed';
    this.countNotScanned(reason, closed ? 'closed' : 'open');
    this.logNotScanned(o, reason, detail, closed ? 'drop' : cfg.block ? 'pass' : 'alert');
    if (closed) o.flow.view.decide(this, ACTION.DROP, { reason: 'av.not_scanned', rule: null, detail: clip(`${reason}: ${detail}`), dir: o.dir });
  }

  private countNotScanned(reason: AvNotScannedReason, fail: FailMode): void {
    const key = `not_scanned_${reason}` as const;
    this.c[key]++;
    if (fail === 'closed') this.c.failed_closed++;
    else this.c.failed_open++;
  }

  /** An `anomaly` event (an exception-policy decision): never a clean verdict. */
  private logNotScanned(o: AvObject, reason: AvNotScannedReason, detail: string, action: 'pass' | 'drop' | 'alert'): void {
    const cfg = o.flow.cfg;
    const outcome = action === 'drop' ? 'failed closed: flow dropped' : action === 'pass' ? 'failed open: object passed' : 'alert mode: object passed';
    const policy = `on_${reason === 'size_limit' ? 'oversize' : reason === 'timeout' || reason === 'incomplete' ? reason : 'scanner_error'}: ${failModeFor(cfg, reason)}`;
    this.ctx.log({
      kind: 'anomaly',
      stage: 'av',
      code: `av.not_scanned.${reason}`,
      action,
      reason: clip(`${dirName(o.dir)} object not scanned (${reason}) after ${o.bytes} bytes: ${detail}; ${outcome} (${policy})`),
      flow: contentFlowFields(o.flow.view.meta),
      count: 1,
    });
  }

  /** The direction's cleared offset: the lowest pin of its pending objects and its streaming object's drain pin. */
  private updateCleared(flow: AvFlow, dir: number): void {
    if (!flow.cfg.block || flow.ended || flow.view.decided) return;
    let min = CLEARED_ALL;
    const cur = flow.cur[dir];
    if (cur != null && cur.drainPin >= 0) min = cur.drainPin;
    for (const o of flow.pending[dir] as AvObject[]) if (o.pin < min) min = o.pin;
    if (min === flow.cleared[dir]) return;
    flow.cleared[dir] = min;
    flow.view.setCleared(this, dir, min);
  }

  private logState(status: CanaryStatus, previous: CanaryState | 'unknown'): void {
    this.ctx.log({
      kind: 'scanner_state',
      scanner: 'clamav',
      state: status.state,
      previous: this.stateLogged ? previous : 'unknown',
      detail: clip(status.reason),
    });
    this.stateLogged = true;
  }
}
