import t from 'tap';
import { LogQueue, type LogEntry } from '../../src/log/queue.js';
import { takeBatch, CW_LIMITS, CW_MAX_BATCH_BYTES, CW_MAX_BATCH_EVENTS, CW_EVENT_OVERHEAD_BYTES, CW_MAX_EVENT_BYTES } from '../../src/log/cloudwatch.js';

function entry(bytes: number, timeMs: number, tag = ''): LogEntry {
  const line = tag.padEnd(bytes, 'x');
  return { line, bytes: Buffer.byteLength(line), timeMs };
}

function queueOf(entries: LogEntry[]): LogQueue {
  const q = new LogQueue(1 << 30);
  for (const e of entries) if (!q.push(e)) throw new Error('queue full');
  return q;
}

t.test('the PutLogEvents limits are the documented ones', async (t) => {
  t.same([CW_MAX_BATCH_EVENTS, CW_MAX_BATCH_BYTES, CW_EVENT_OVERHEAD_BYTES, CW_MAX_EVENT_BYTES], [10_000, 1_048_576, 26, 262_144]);
});

t.test('at most 10,000 events per call', async (t) => {
  const q = queueOf(Array.from({ length: 25_000 }, (_, i) => entry(10, i)));
  const sizes = [];
  while (q.length > 0) sizes.push(takeBatch(q, CW_LIMITS, { count: 0 }).length);
  t.same(sizes, [10_000, 10_000, 5_000]);
});

t.test('bytes per call count the 26-byte overhead and stop exactly at 1,048,576', async (t) => {
  // 1,048,576 = 1024 × 1024: 1024 events of 998 message bytes + 26 fill a call exactly.
  const q = queueOf(Array.from({ length: 1025 }, (_, i) => entry(998, i)));
  t.equal(takeBatch(q, CW_LIMITS, { count: 0 }).length, 1024, 'exactly full');
  t.equal(takeBatch(q, CW_LIMITS, { count: 0 }).length, 1);
  const q2 = queueOf([...Array.from({ length: 1023 }, (_, i) => entry(998, i)), entry(999, 2000)]);
  t.equal(takeBatch(q2, CW_LIMITS, { count: 0 }).length, 1023, 'one byte over: the last event waits for the next call');
});

t.test('a call spans at most 24 hours and is sorted by time, stable within a millisecond', async (t) => {
  const h = 3_600_000;
  const q = queueOf([entry(5, 10 * h, 'a'), entry(5, 0, 'b'), entry(5, 10 * h, 'c'), entry(5, 24 * h, 'd'), entry(5, 24 * h + 1, 'e'), entry(5, 30 * h, 'f')]);
  const first = takeBatch(q, CW_LIMITS, { count: 0 });
  t.same(first.map((e) => e.line[0]), ['b', 'a', 'c', 'd'], 'sorted; e would make the span 24 h + 1 ms');
  t.same(takeBatch(q, CW_LIMITS, { count: 0 }).map((e) => e.line[0]), ['e', 'f']);
});

t.test('an event over 256 KiB (with its overhead) is dropped and counted, its neighbours go on', async (t) => {
  const oversize = { count: 0 };
  const q = queueOf([entry(10, 1, 'a'), entry(CW_MAX_EVENT_BYTES - CW_EVENT_OVERHEAD_BYTES + 1, 2, 'b'), entry(CW_MAX_EVENT_BYTES - CW_EVENT_OVERHEAD_BYTES, 3, 'c')]);
  t.same(takeBatch(q, CW_LIMITS, oversize).map((e) => e.line[0]), ['a', 'c'], 'the largest allowed event fits');
  t.equal(oversize.count, 1);
  t.equal(q.length, 0);
});
