/**
 * A small, faithful stand-in for the ContentInspector (src/content/inspector.ts) for DLP stage tests: real HTTP/1
 * parsing and decoding (Http1Session), packets as stream ranges, the content contract's holds (a packet leaves when
 * every blocking stage's cleared offset covers it, in order) and decisions (DROP/REJECT discard the held and later
 * packets). What "the server received" is the concatenation of the packets that left.
 */
import { Http1Session, type HttpEndReason, type HttpHead, type HttpObjectKind, type HttpAnomaly } from '../../src/stream/http1.js';
import { CLEARED_ALL, type ContentFlowMeta, type ContentFlowView, type ContentStage, type Provenance } from '../../src/pipeline/content.js';
import { ACTION, type Action } from '../../src/pipeline/stage.js';
import { STREAM_END } from '../../src/stream/events.js';

export const META: ContentFlowMeta = {
  flowId: 'f-1',
  ipVersion: 4,
  client: '10.0.0.1',
  clientPort: 40000,
  server: '10.0.0.2',
  serverPort: 80,
  endpointId: null,
  attachmentId: null,
  scope: 0,
  scopeName: 'default',
  midstream: false,
};

interface Packet {
  dir: number;
  start: number;
  bytes: Buffer;
}

export class Driver implements ContentFlowView {
  readonly flow = 0;
  closed = false;
  decided = false;
  chunkStart = 0;
  chunkEnd = 0;
  readonly meta: ContentFlowMeta;
  readonly decisions: { action: Action; why: Provenance }[] = [];
  readonly clearedLog: { dir: number; offset: number }[] = [];
  /** Bytes that left the appliance, per direction. */
  readonly received: [Buffer[], Buffer[]] = [[], []];
  private readonly stage: ContentStage;
  private readonly cleared = [CLEARED_ALL, CLEARED_ALL];
  private readonly held: Packet[] = [];
  private readonly offsets = [0, 0];
  private readonly session: Http1Session;
  private readonly wanted: boolean;

  constructor(stage: ContentStage, meta: ContentFlowMeta = META) {
    this.stage = stage;
    this.meta = meta;
    this.wanted = stage.wants(meta);
    const view = this;
    this.session = new Http1Session({
      onObjectStart(dir: number, kind: HttpObjectKind, head: HttpHead | null) {
        if (view.live()) stage.onObjectStart(view, dir, kind, head);
      },
      onBody(dir: number, data: Uint8Array) {
        if (view.live()) stage.onBody(view, dir, data);
      },
      onObjectEnd(dir: number, reason: HttpEndReason) {
        if (view.live()) stage.onObjectEnd(view, dir, reason);
      },
      onAnomaly(dir: number, code: HttpAnomaly) {
        if (view.live()) stage.onAnomaly?.(view, dir, code);
      },
    });
  }

  private live(): boolean {
    return this.wanted && !this.decided && !this.closed;
  }

  delivered(dir: number): number {
    return this.offsets[dir]!;
  }

  setCleared(stage: ContentStage, dir: number, offset: number): void {
    if (this.closed || stage !== this.stage) return;
    this.clearedLog.push({ dir, offset });
    this.cleared[dir] = offset;
    this.release();
  }

  decide(stage: ContentStage, action: Action, why: Provenance): void {
    if (this.closed || stage !== this.stage) return;
    this.decisions.push({ action, why });
    if (action === ACTION.DROP || action === ACTION.REJECT) {
      this.decided = true;
      this.held.length = 0;
    } else {
      this.cleared[0] = CLEARED_ALL;
      this.cleared[1] = CLEARED_ALL;
      this.release();
    }
  }

  /** One TCP segment's payload in `dir` (0: client → server), in order. */
  packet(dir: number, bytes: Buffer): void {
    if (this.decided || this.closed) return;
    const start = this.offsets[dir]!;
    this.offsets[dir] = start + bytes.length;
    this.held.push({ dir, start, bytes: Buffer.from(bytes) });
    this.chunkStart = start;
    this.chunkEnd = start + bytes.length;
    const d = dir === 0 ? this.session.request : this.session.response;
    d.onData(bytes, start);
    this.release();
  }

  /** The hold budget ran out (the inspector's timer or byte count): what the stage's fail mode says. */
  expireHold(dir: number, budget: 'bytes' | 'ms'): Action {
    const a = this.stage.onHoldExceeded(this, dir, budget);
    if (a === ACTION.PASS || a === ACTION.ALERT) {
      this.cleared[dir] = CLEARED_ALL;
      this.release();
    } else {
      this.decide(this.stage, a, { reason: 'dlp.hold_exceeded', rule: null });
    }
    return a;
  }

  end(): void {
    if (this.closed) return;
    this.session.request.onEnd(this.offsets[0]!, STREAM_END.FIN);
    this.session.response.onEnd(this.offsets[1]!, STREAM_END.FIN);
    this.release();
    this.closed = true;
    this.stage.onFlowEnd(this);
  }

  get heldCount(): number {
    return this.held.length;
  }

  receivedBytes(dir = 0): Buffer {
    return Buffer.concat(this.received[dir]!);
  }

  private release(): void {
    if (this.decided) return;
    // In order per direction: a packet leaves when the stage cleared every byte it carries.
    for (let i = 0; i < this.held.length; ) {
      const p = this.held[i]!;
      const blocked = this.held.slice(0, i).some((q) => q.dir === p.dir);
      if (!blocked && (!this.stage.blocking || p.start + p.bytes.length <= this.cleared[p.dir]!)) {
        this.received[p.dir]!.push(p.bytes);
        this.held.splice(i, 1);
      } else i++;
    }
  }
}

/** `text` cut into packets of `size` bytes (the last may be shorter). */
export function segments(text: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.subarray(i, i + size));
  return out;
}
