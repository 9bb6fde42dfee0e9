import t from 'tap';
import fc from 'fast-check';
import {
  anomalyCounter,
  createStreamCounters,
  SEGMENT_RESULT,
  STREAM_ANOMALY,
  STREAM_COUNTER,
  STREAM_END,
  type StreamAnomaly,
  type StreamConsumer,
  type StreamEndReason,
} from '../../src/stream/events.js';
import { StreamMemcap } from '../../src/stream/memcap.js';
import { STREAM_CHUNK_OVERHEAD_BYTES, streamOptions, StreamOptionsError, type StreamOptions } from '../../src/stream/options.js';
import { DIRECTION_STATE, StreamDirection } from '../../src/stream/reassembler.js';
import { seqAdd, seqDiff } from '../../src/stream/seq.js';

/** Records what a direction hands its consumer. */
class Sink implements StreamConsumer {
  chunks: Uint8Array[] = [];
  offsets: number[] = [];
  gaps: [number, number][] = [];
  ends: [number, StreamEndReason][] = [];
  anomalies: StreamAnomaly[] = [];
  /** The data objects as handed over (to check zero-copy). */
  views: Uint8Array[] = [];
  next = 0;
  contiguous = true;
  onData(data: Uint8Array, offset: number): void {
    if (offset !== this.next) this.contiguous = false;
    this.next = offset + data.length;
    this.views.push(data);
    this.chunks.push(Uint8Array.from(data));
    this.offsets.push(offset);
  }
  onGap(offset: number, length: number): void {
    if (offset !== this.next) this.contiguous = false;
    this.next = offset + length;
    this.gaps.push([offset, length]);
  }
  onEnd(offset: number, reason: StreamEndReason): void {
    this.ends.push([offset, reason]);
  }
  onAnomaly(code: StreamAnomaly): void {
    this.anomalies.push(code);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function make(opts: Partial<StreamOptions> = {}, memcap = new StreamMemcap()): { d: StreamDirection; sink: Sink; counters: Float64Array; memcap: StreamMemcap } {
  const sink = new Sink();
  const counters = createStreamCounters();
  const d = new StreamDirection(streamOptions(opts), memcap, counters, sink);
  return { d, sink, counters, memcap };
}

/** A segment: payload bytes [from, to) of the stream. */
interface Seg {
  from: number;
  to: number;
}

/** Sends `segs` of `payload` (stream offsets from 0 = ISN+1) into `d`, anchored at isn. */
function send(d: StreamDirection, isn: number, payload: Uint8Array, segs: Seg[], nowMs = 0): number[] {
  return segs.map((s) => d.segment(seqAdd(isn, 1 + s.from), payload, s.from, s.to - s.from, false, nowMs));
}

const ISN_WRAP = 0xffff_fff0;

t.test('sequence arithmetic is modulo 2^32 (RFC 9293 §3.4)', async (t) => {
  t.equal(seqDiff(5, 0xffff_fffb), 10, '5 is 10 after 2^32 − 5');
  t.equal(seqDiff(0xffff_fffb, 5), -10);
  t.equal(seqAdd(0xffff_ffff, 1), 0);
  t.equal(seqAdd(0xffff_fff0, 2 ** 40 + 0x20), 0x10, 'a 53-bit advance wraps exactly');
});

t.test('in-order bytes are delivered at once, as the caller’s buffer when nothing is pending', async (t) => {
  const { d, sink } = make();
  d.start(1001, false);
  const a = Buffer.from('hello ');
  const b = Buffer.from('world');
  t.equal(d.segment(1001, a, 0, a.length, false, 0), SEGMENT_RESULT.ACCEPT);
  t.equal(d.segment(1007, b, 0, b.length, true, 0), SEGMENT_RESULT.ACCEPT);
  t.equal(sink.bytes().toString(), 'hello world');
  t.equal(sink.views[0], a, 'the very buffer, no copy');
  t.same(sink.offsets, [0, 6]);
  t.same(sink.ends, [[11, STREAM_END.FIN]], 'FIN ends the stream after the last byte');
  t.equal(d.delivered, 11);
  t.equal(d.state, DIRECTION_STATE.ENDED);
});

t.test('out-of-order segments wait for the hole and FIN waits for every byte before it', async (t) => {
  const { d, sink, counters, memcap } = make();
  const isn = ISN_WRAP;
  d.start(seqAdd(isn, 1), false);
  const p = Buffer.from('0123456789abcdefghij');
  d.segment(seqAdd(isn, 11), p, 10, 10, true, 0);
  d.segment(seqAdd(isn, 6), p, 5, 5, false, 0);
  t.equal(sink.chunks.length, 0, 'nothing before the hole is filled');
  t.ok(memcap.usedBytes > 0, 'out-of-order bytes are held against the memcap');
  t.same(sink.ends, [], 'FIN seen but bytes missing: no end yet');
  d.segment(seqAdd(isn, 1), p, 0, 5, false, 0);
  t.equal(sink.bytes().toString(), '0123456789abcdefghij', 'across the 2^32 wrap');
  t.same(sink.ends, [[20, STREAM_END.FIN]]);
  t.equal(counters[STREAM_COUNTER.BYTES_BUFFERED], 15);
  t.equal(memcap.usedBytes, 0, 'an ended stream holds no memory');
});

t.test('any segmentation, reordering and duplication with identical bytes yields exactly the byte string (fast-check)', async (t) => {
  const arb = fc
    .record({
      data: fc.uint8Array({ minLength: 1, maxLength: 2000 }),
      isn: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0xffff_f000, max: 0xffff_ffff })),
      cuts: fc.array(fc.nat(), { maxLength: 40 }),
      dups: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 15 }),
      order: fc.array(fc.nat(), { maxLength: 80 }),
      acks: fc.boolean(),
    })
    .map((r) => {
      const n = r.data.length;
      const points = [...new Set([0, n, ...r.cuts.map((c) => c % (n + 1))])].sort((a, b) => a - b);
      const segs: Seg[] = [];
      for (let i = 0; i + 1 < points.length; i++) segs.push({ from: points[i]!, to: points[i + 1]! });
      for (const [a, b] of r.dups) {
        const from = a % n;
        const to = from + 1 + (b % (n - from));
        segs.push({ from, to });
      }
      // Deterministic shuffle from the generated order.
      for (let i = segs.length - 1; i > 0; i--) {
        const j = (r.order[i % Math.max(1, r.order.length)] ?? 0) % (i + 1);
        [segs[i], segs[j]] = [segs[j]!, segs[i]!];
      }
      return { ...r, segs };
    });
  fc.assert(
    fc.property(arb, ({ data, isn, segs, acks }) => {
      const { d, sink, memcap } = make();
      d.start(seqAdd(isn, 1), false);
      for (const s of segs) {
        const r = d.segment(seqAdd(isn, 1 + s.from), data, s.from, s.to - s.from, false, 0);
        if (r !== SEGMENT_RESULT.ACCEPT) return false;
        if (acks) d.ack(seqAdd(isn, 1 + Math.floor(d.delivered / 2)), 1 << 20);
      }
      d.segment(seqAdd(isn, 1 + data.length), data, 0, 0, true, 0);
      return (
        Buffer.from(data).equals(sink.bytes()) &&
        sink.contiguous &&
        sink.anomalies.length === 0 &&
        sink.gaps.length === 0 &&
        sink.ends.length === 1 &&
        sink.ends[0]![1] === STREAM_END.FIN &&
        memcap.usedBytes === 0
      );
    }),
    { numRuns: 300 },
  );
  t.pass('consumer received exactly the original bytes');
});

t.test('differing overlaps: first bytes win, the overlap is reported, the policy may ask for a drop (fast-check)', async (t) => {
  const arb = fc.record({
    data: fc.uint8Array({ minLength: 2, maxLength: 400 }),
    isn: fc.integer({ min: 0, max: 0xffff_ffff }),
    // Arriving segments, each either the original bytes or altered ones.
    segs: fc.array(fc.record({ a: fc.nat(), b: fc.nat(), alter: fc.boolean(), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 30 }),
    policy: fc.constantFrom('pass' as const, 'drop' as const),
  });
  fc.assert(
    fc.property(arb, ({ data, isn, segs, policy }) => {
      const n = data.length;
      const { d, sink } = make({ onOverlapDifferent: policy });
      d.start(seqAdd(isn, 1), false);
      // Model: the first byte seen at each offset wins.
      const first: (number | undefined)[] = new Array<number | undefined>(n).fill(undefined);
      let differing = false;
      let drops = 0;
      const all = [...segs.map((s) => ({ ...s, whole: false })), { a: 0, b: 0, alter: false, xor: 1, whole: true }];
      for (const s of all) {
        const from = s.whole ? 0 : s.a % n;
        const to = s.whole ? n : Math.min(n, from + 1 + (s.b % (n - from)));
        const bytes = Uint8Array.from(data.subarray(from, to), (x) => (s.alter ? x ^ s.xor : x));
        let differsHere = false;
        for (let k = from; k < to; k++) {
          const v = bytes[k - from]!;
          if (first[k] === undefined) first[k] = v;
          else if (first[k] !== v) differsHere = true;
        }
        const r = d.segment(seqAdd(isn, 1 + from), bytes, 0, to - from, false, 0);
        if (differsHere) {
          differing = true;
          if (r !== (policy === 'drop' ? SEGMENT_RESULT.DROP : SEGMENT_RESULT.ACCEPT)) return false;
          drops++;
        } else if (r !== SEGMENT_RESULT.ACCEPT) return false;
      }
      const expected = Uint8Array.from(first as number[]);
      const overlapReports = sink.anomalies.filter((a) => a === STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA).length;
      return Buffer.from(expected).equals(sink.bytes()) && (overlapReports > 0) === differing && overlapReports >= (drops > 0 ? 1 : 0);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('a retransmission of delivered bytes is compared until the receiver acknowledges them', async (t) => {
  const { d, sink, counters } = make();
  d.start(1, false);
  d.segment(1, Buffer.from('GET /safe HTTP/1.1\r\n'), 0, 20, false, 0);
  t.equal(d.segment(6, Buffer.from('evil'), 0, 4, false, 0), SEGMENT_RESULT.DROP, 'other bytes for delivered, unacknowledged offsets');
  t.same(sink.anomalies, [STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA]);
  t.equal(sink.bytes().toString(), 'GET /safe HTTP/1.1\r\n', 'the first bytes stay');
  d.ack(21, 65535);
  t.equal(d.retainedBytes, 0, 'acknowledged bytes are freed');
  t.equal(d.segment(6, Buffer.from('evil'), 0, 4, false, 0), SEGMENT_RESULT.ACCEPT, 'below the ACK the receiver discards it');
  t.equal(sink.anomalies.length, 1);
  t.equal(counters[STREAM_COUNTER.BYTES_RETRANSMITTED], 4);
});

t.test('bounds: a full out-of-order buffer is an anomaly and a drop; retransmitting later completes the stream (fast-check)', async (t) => {
  const oooMaxBytes = 1024;
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 6000 }), fc.array(fc.nat(), { maxLength: 60 }), fc.integer({ min: 0, max: 0xffff_ffff }), (data, cuts, isn) => {
      const n = data.length;
      const points = [...new Set([0, n, ...cuts.map((c) => c % (n + 1))])].sort((a, b) => a - b);
      let todo: Seg[] = [];
      for (let i = 0; i + 1 < points.length; i++) todo.push({ from: points[i]!, to: points[i + 1]! });
      todo.reverse(); // worst order: everything out of order
      const memcap = new StreamMemcap(1 << 20);
      const { d, sink } = make({ oooMaxBytes }, memcap);
      d.start(seqAdd(isn, 1), false);
      let rounds = 0;
      while (todo.length > 0 && rounds++ < 10_000) {
        const dropped: Seg[] = [];
        for (const s of todo) {
          if (send(d, isn, data, [s])[0] === SEGMENT_RESULT.DROP) dropped.push(s);
          if (d.pendingBytes > oooMaxBytes) return false;
        }
        todo = dropped; // the sender retransmits what was dropped
      }
      d.segment(seqAdd(isn, 1 + n), data, 0, 0, true, 0);
      return Buffer.from(data).equals(sink.bytes()) && sink.ends[0]?.[1] === STREAM_END.FIN && memcap.usedBytes === 0;
    }),
    { numRuns: 150 },
  );
  t.pass();
  const { d, sink, counters } = make({ oooMaxBytes: 100 + STREAM_CHUNK_OVERHEAD_BYTES });
  d.start(1, false);
  const p = new Uint8Array(300);
  t.equal(d.segment(11, p, 0, 100, false, 0), SEGMENT_RESULT.ACCEPT);
  t.equal(d.segment(111, p, 0, 1, false, 0), SEGMENT_RESULT.DROP, 'no room for one more byte with its overhead');
  t.same(sink.anomalies, [STREAM_ANOMALY.OOO_BUFFER_FULL]);
  t.equal(counters[anomalyCounter(STREAM_ANOMALY.OOO_BUFFER_FULL)], 1);
});

t.test('the per-worker memcap is shared by streams and never exceeded', async (t) => {
  const memcap = new StreamMemcap(3000);
  const a = make({ retainMaxBytes: 0, onMemcap: 'pass' }, memcap);
  const b = make({ retainMaxBytes: 0 }, memcap);
  a.d.start(1, false);
  b.d.start(1, false);
  const p = new Uint8Array(2000);
  t.equal(a.d.segment(101, p, 0, 2000, false, 0), SEGMENT_RESULT.ACCEPT);
  t.equal(b.d.segment(101, p, 0, 2000, false, 0), SEGMENT_RESULT.DROP, 'the other stream took the budget');
  t.same(b.sink.anomalies, [STREAM_ANOMALY.MEMCAP]);
  t.ok(memcap.usedBytes <= 3000);
  t.equal(a.d.segment(3001, p, 0, 1000, false, 0), SEGMENT_RESULT.ACCEPT, "onMemcap 'pass': not buffered, packet passes");
  t.same(a.sink.anomalies, [STREAM_ANOMALY.MEMCAP]);
  a.d.close();
  t.equal(memcap.usedBytes, 0, 'close() returns the bytes');
  t.same(a.sink.ends, [[0, STREAM_END.CLOSED]]);
});

t.test('holes: bounded wait in bytes and in ms, then skip (gap event) or stop', async (t) => {
  const p = Buffer.from('abcdefghijklmnopqrstuvwxyz');
  const skip = make({ holeWaitBytes: 10, holeWaitMs: 1000 });
  skip.d.start(1, false);
  skip.d.segment(6, p, 5, 5, false, 0); // [5, 10): 10 bytes wait behind the hole [0, 5)
  t.same(skip.sink.gaps, [], 'within the byte bound');
  skip.d.segment(11, p, 10, 5, false, 0); // [10, 15): 15 > 10
  t.same(skip.sink.gaps, [[0, 5]], 'over the byte bound: the hole is skipped');
  t.same(skip.sink.anomalies, [STREAM_ANOMALY.HOLE]);
  t.equal(skip.sink.bytes().toString(), 'fghijklmno', 'and the bytes after it delivered');
  skip.d.segment(1, p, 0, 5, false, 0);
  t.equal(skip.sink.bytes().toString(), 'fghijklmno', 'the late bytes of a skipped hole are old data');

  const timed = make({ holeWaitBytes: 1 << 20, holeWaitMs: 1000 });
  timed.d.start(1, false);
  timed.d.segment(11, p, 10, 3, false, 5000);
  timed.d.poll(5999);
  t.same(timed.sink.gaps, [], 'not yet 1000 ms');
  timed.d.poll(6000);
  t.same(timed.sink.gaps, [[0, 10]], 'after holeWaitMs');
  t.equal(timed.sink.bytes().toString(), 'klm');

  const stop = make({ holeWaitBytes: 4, onHole: 'stop' });
  stop.d.start(1, false);
  stop.d.segment(3, p, 2, 5, false, 0);
  t.same(stop.sink.ends, [[0, STREAM_END.GAP]], "onHole 'stop' ends the direction");
  t.equal(stop.memcap.usedBytes, 0);
  t.equal(stop.d.segment(1, p, 0, 10, false, 0), SEGMENT_RESULT.ACCEPT, 'later segments are ignored');
  t.equal(stop.sink.chunks.length, 0);
});

t.test('depth: bytes after depthBytes are not inspected', async (t) => {
  const { d, sink, counters } = make({ depthBytes: 10 });
  d.start(1, false);
  const p = Buffer.from('0123456789ABCDEF');
  d.segment(9, p, 8, 8, false, 0); // pending
  d.segment(1, p, 0, 8, false, 0);
  t.equal(sink.bytes().toString(), '0123456789');
  t.same(sink.ends, [[10, STREAM_END.DEPTH]]);
  t.equal(counters[STREAM_COUNTER.DEPTH_REACHED], 1);
  t.equal(d.pendingBytes + d.retainedBytes, 0);
});

t.test('window: bytes beyond the advertised window are not buffered', async (t) => {
  const { d, sink } = make();
  d.start(1, false);
  d.ack(1, 100); // receiver: ack offset 0, window 100
  const p = new Uint8Array(400);
  t.equal(d.segment(150, p, 0, 10, false, 0), SEGMENT_RESULT.DROP);
  t.same(sink.anomalies, [STREAM_ANOMALY.BEYOND_WINDOW]);
  t.equal(d.pendingBytes, 0, 'not buffered');
  t.equal(d.segment(101, p, 0, 1, false, 0), SEGMENT_RESULT.ACCEPT, 'a one-byte zero-window probe at the edge is fine');
  d.segment(300, p, 0, 0, true, 0);
  t.equal(d.finOffset, -1, 'a FIN past the window ends nothing');
  const mid = make({ maxAheadBytes: 1000 });
  mid.d.start(1, true);
  t.equal(mid.d.segment(2000, p, 0, 10, false, 0), SEGMENT_RESULT.DROP);
  t.same(mid.sink.anomalies, [STREAM_ANOMALY.MIDSTREAM, STREAM_ANOMALY.TOO_FAR_AHEAD], 'window unknown: maxAheadBytes bounds');
});

t.test('data after FIN is an anomaly and ignored', async (t) => {
  const { d, sink } = make();
  d.start(1, false);
  const p = Buffer.from('abcdef');
  d.segment(4, p, 3, 3, false, 0);
  d.segment(1, p, 0, 2, true, 0); // FIN at offset 2
  t.equal(sink.bytes().toString(), 'ab');
  t.same(sink.ends, [[2, STREAM_END.FIN]]);
  t.same(sink.anomalies, [STREAM_ANOMALY.DATA_AFTER_FIN], 'the earlier bytes past the FIN');
});

t.test('options are range-checked', async (t) => {
  t.throws(() => streamOptions({ depthBytes: 0 }), StreamOptionsError);
  t.throws(() => streamOptions({ oooMaxBytes: -1 }), StreamOptionsError);
  t.throws(() => streamOptions({ onHole: 'maybe' as 'skip' }), StreamOptionsError);
  t.equal(streamOptions().onOverlapDifferent, 'drop');
});
