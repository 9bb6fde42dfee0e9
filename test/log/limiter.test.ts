import t from 'tap';
import { LogLimiter, MAX_LIMITER_KEYS, OVERFLOW_KEY } from '../../src/log/limiter.js';

t.test('a token bucket per key: burst of one second, then the rate, every refusal counted', async (t) => {
  const l = new LogLimiter({ ratePerS: 10, sampleEvery: 1 });
  const at0 = Array.from({ length: 15 }, () => l.decide('a', false, 0));
  t.equal(at0.filter((d) => d === 'write').length, 10, 'burst = 10 events');
  t.equal(at0.filter((d) => d === 'rate_limited').length, 5);
  t.equal(l.decide('a', false, 99), 'rate_limited', 'less than one token after 99 ms at 10/s');
  t.equal(l.decide('a', false, 200), 'write', 'a token is back after 100 ms');
  t.equal(l.takeSuppressed('a'), 6, 'the next written event reports the 6 left out');
  t.equal(l.takeSuppressed('a'), 0, 'and the count restarts');
  t.same({ written: l.written, rateLimited: l.rateLimited, sampledOut: l.sampledOut }, { written: 11, rateLimited: 6, sampledOut: 0 });
});

t.test('a flood on one key leaves other keys their own budget', async (t) => {
  const l = new LogLimiter({ ratePerS: 5, sampleEvery: 1 });
  for (let i = 0; i < 10_000; i++) l.decide('rule-flood', false, i / 1000);
  t.equal(l.decide('rule-quiet', false, 10), 'write');
  const flood = l.counts().find((c) => c.key === 'rule-flood');
  t.equal((flood?.written ?? 0) + (flood?.rateLimited ?? 0), 10_000, 'counters are exact');
  t.ok((flood?.written ?? 0) <= 6, 'the flood got about its burst plus 10 ms of rate');
});

t.test('sampling keeps exactly 1 of N per key, counted; unsampled kinds are not thinned', async (t) => {
  const l = new LogLimiter({ ratePerS: 1e9, sampleEvery: 4 });
  const d = Array.from({ length: 100 }, () => l.decide('k', true, 0));
  t.equal(d.filter((x) => x === 'write').length, 25);
  t.equal(l.sampledOut, 75);
  t.same(d.slice(0, 5), ['write', 'sampled_out', 'sampled_out', 'sampled_out', 'write'], 'the first of every 4');
  t.equal(Array.from({ length: 10 }, () => l.decide('anomaly', false, 0)).filter((x) => x === 'write').length, 10);
});

t.test('the key table is bounded: later keys share one overflow bucket', async (t) => {
  const l = new LogLimiter({ ratePerS: 1, sampleEvery: 1 });
  for (let i = 0; i < MAX_LIMITER_KEYS + 500; i++) l.decide(`k${i}`, false, 0);
  const counts = l.counts();
  t.equal(counts.length, MAX_LIMITER_KEYS + 1);
  const overflow = counts.find((c) => c.key === OVERFLOW_KEY);
  t.same(overflow, { key: OVERFLOW_KEY, written: 1, rateLimited: 499, sampledOut: 0 }, 'keys past the cap share one budget');
  t.equal(l.written + l.rateLimited, MAX_LIMITER_KEYS + 500);
});

t.test('bad options are refused', async (t) => {
  t.throws(() => new LogLimiter({ ratePerS: 0, sampleEvery: 1 }), RangeError);
  t.throws(() => new LogLimiter({ ratePerS: 1, sampleEvery: 0 }), RangeError);
});
