/**
 * test_match: a content stage that exists to prove the chain contract (docs/architecture.md §3.2), enabled only by
 * a policy's `testing.content_match` section on an appliance started with --enable-test-stages.
 *
 * It looks for one byte string in each object's decoded body (HTTP bodies after dechunking and decoding; the raw
 * stream for other protocols), also across chunk and packet boundaries. Two modes:
 *   - match: decide the flow as soon as the bytes are seen (as DLP does);
 *   - object_end: clear everything but the tail of each object, answer verdict_delay_ms after the object ends
 *     (as the antivirus does with clamd's answer): the packet that completed the object waits for the answer.
 */
import { ACTION, type Action } from '../pipeline/stage.js';
import { CLEARED_ALL, type ContentFlowMeta, type ContentFlowView, type ContentStage } from '../pipeline/content.js';
import type { HttpEndReason, HttpHead, HttpObjectKind } from '../stream/http1.js';
import type { TestingSection } from './test-policy.js';

type MatchConfig = NonNullable<TestingSection['content_match']>;

interface DirState {
  /** The last needle.length − 1 body bytes of the current object (a match may straddle chunks): tail[0, tailLen). */
  tail: Buffer;
  tailLen: number;
  found: boolean;
  /** object_end mode: stream offsets where objects awaiting their answer were pinned. */
  pins: number[];
}

interface FlowState {
  dirs: [DirState, DirState];
  timers: Set<NodeJS.Timeout>;
}

const ACTIONS: Record<MatchConfig['action'], Action> = { drop: ACTION.DROP, reject: ACTION.REJECT, alert: ACTION.ALERT };

export class TestMatchStage implements ContentStage {
  readonly name = 'test_match';
  readonly blocking: boolean;
  readonly holdBudgetBytes: number;
  readonly holdBudgetMs: number;
  readonly counters = { objects: 0, matches: 0, answers: 0, budget_exceeded: 0 };
  private readonly needle: Buffer;
  private readonly action: Action;
  private readonly objectEnd: boolean;
  private readonly delayMs: number;
  private readonly failOpen: boolean;
  private readonly flows = new Map<ContentFlowView, FlowState>();

  constructor(config: MatchConfig) {
    this.needle = Buffer.from(config.bytes, 'utf8');
    this.action = ACTIONS[config.action];
    this.blocking = config.action !== 'alert';
    this.objectEnd = config.mode === 'object_end';
    this.delayMs = config.verdict_delay_ms;
    this.holdBudgetBytes = config.hold_budget_bytes;
    this.holdBudgetMs = config.hold_budget_ms;
    this.failOpen = config.fail === 'open';
  }

  wants(_meta: ContentFlowMeta): boolean {
    return true;
  }

  onObjectStart(view: ContentFlowView, dir: number, _kind: HttpObjectKind, _head: HttpHead | null): void {
    const d = this.state(view).dirs[dir] as DirState;
    d.tailLen = 0;
    d.found = false;
    this.counters.objects++;
  }

  onBody(view: ContentFlowView, dir: number, data: Uint8Array): void {
    const d = this.state(view).dirs[dir] as DirState;
    if (d.found) return;
    const needle = this.needle;
    const chunk = data instanceof Buffer ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.straddles(d, chunk) || chunk.indexOf(needle) >= 0) {
      d.found = true;
      this.counters.matches++;
      if (!this.objectEnd) this.answer(view, dir);
      return;
    }
    // Keep the last needle.length − 1 bytes seen (a match may straddle this chunk and the next).
    const keep = d.tail.length;
    if (chunk.length >= keep) {
      chunk.copy(d.tail, 0, chunk.length - keep);
      d.tailLen = keep;
    } else {
      const drop = Math.max(0, d.tailLen + chunk.length - keep);
      d.tail.copy(d.tail, 0, drop, d.tailLen);
      d.tailLen -= drop;
      chunk.copy(d.tail, d.tailLen);
      d.tailLen += chunk.length;
    }
  }

  /** Does the needle start in the kept tail and end in `chunk`? (No allocation: compared in place.) */
  private straddles(d: DirState, chunk: Buffer): boolean {
    const needle = this.needle;
    const tail = d.tail;
    const tl = d.tailLen;
    // k = needle bytes in the tail (1 .. needle.length − 1), the rest at the start of the chunk.
    for (let k = Math.min(tl, needle.length - 1); k >= 1; k--) {
      if (needle.length - k > chunk.length) continue;
      let ok = true;
      for (let j = 0; j < k && ok; j++) ok = tail[tl - k + j] === needle[j];
      for (let j = k; j < needle.length && ok; j++) ok = chunk[j - k] === needle[j];
      if (ok) return true;
    }
    return false;
  }

  onObjectEnd(view: ContentFlowView, dir: number, _reason: HttpEndReason): void {
    if (!this.objectEnd) return;
    const fs = this.state(view);
    const d = fs.dirs[dir] as DirState;
    const found = d.found;
    // Hold the tail: the bytes of the chunk that completed the object (and everything after) wait for the answer.
    const pin = view.chunkStart;
    d.pins.push(pin);
    view.setCleared(this, dir, Math.min(...d.pins));
    const timer = setTimeout(() => {
      fs.timers.delete(timer);
      this.counters.answers++;
      if (found) {
        this.answer(view, dir);
        return;
      }
      const i = d.pins.indexOf(pin);
      if (i >= 0) d.pins.splice(i, 1);
      view.setCleared(this, dir, d.pins.length === 0 ? CLEARED_ALL : Math.min(...d.pins));
    }, this.delayMs);
    timer.unref(); // an answer never keeps a process alive on its own
    fs.timers.add(timer);
  }

  onHoldExceeded(_view: ContentFlowView, _dir: number, _budget: 'bytes' | 'ms'): Action {
    this.counters.budget_exceeded++;
    return this.failOpen ? ACTION.PASS : ACTION.DROP;
  }

  onFlowEnd(view: ContentFlowView): void {
    const fs = this.flows.get(view);
    if (fs === undefined) return;
    for (const t of fs.timers) clearTimeout(t);
    this.flows.delete(view);
  }

  async stop(): Promise<void> {
    for (const fs of this.flows.values()) for (const t of fs.timers) clearTimeout(t);
    this.flows.clear();
  }

  private answer(view: ContentFlowView, dir: number): void {
    view.decide(this, this.action, { reason: 'test.match', rule: 'content_match', dir, detail: `the stream carried the test bytes (${this.needle.length} bytes)` });
  }

  private state(view: ContentFlowView): FlowState {
    let fs = this.flows.get(view);
    if (fs === undefined) {
      const keep = this.needle.length - 1;
      fs = { dirs: [newDir(keep), newDir(keep)], timers: new Set() };
      this.flows.set(view, fs);
    }
    return fs;
  }
}

function newDir(keep: number): DirState {
  return { tail: Buffer.alloc(keep), tailLen: 0, found: false, pins: [] };
}
