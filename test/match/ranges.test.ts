import t from 'tap';
import fc from 'fast-check';
import { mergeRanges, NumberSet, PORT_MAX, subtractRanges, V4_MAX, type Range } from '../../src/match/ranges.js';

// Brute-force oracle: a range list as the set of numbers it covers, over a small universe [0, U).
const U = 64;
const arbRange = fc.tuple(fc.nat(U - 1), fc.nat(U - 1)).map(([a, b]): Range => [Math.min(a, b), Math.max(a, b)]);
function members(ranges: Range[]): boolean[] {
  const m = Array<boolean>(U).fill(false);
  for (const [lo, hi] of ranges) for (let i = lo; i <= hi; i++) m[i] = true;
  return m;
}
function canonical(ranges: Range[]): boolean {
  return ranges.every((r, i) => r[0] <= r[1] && (i === 0 || r[0] > (ranges[i - 1] as Range)[1] + 1));
}

t.test('mergeRanges covers exactly the union, sorted, with no touching or overlapping pair', async (t) => {
  fc.assert(
    fc.property(fc.array(arbRange, { maxLength: 8 }), (rs) => {
      const m = mergeRanges(rs);
      return canonical(m) && JSON.stringify(members(m)) === JSON.stringify(members(rs));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('subtractRanges covers exactly a minus b', async (t) => {
  fc.assert(
    fc.property(fc.array(arbRange, { maxLength: 6 }), fc.array(arbRange, { maxLength: 6 }), (a, b) => {
      const d = subtractRanges(mergeRanges(a), mergeRanges(b));
      const ma = members(a);
      const mb = members(b);
      return canonical(d) && JSON.stringify(members(d)) === JSON.stringify(ma.map((x, i) => x && !mb[i]));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('merge and subtract at 0 and at the maximum', async (t) => {
  t.same(mergeRanges([[0, 0], [1, 1]]), [[0, 1]], 'touching at 0');
  t.same(mergeRanges([[V4_MAX, V4_MAX], [0, V4_MAX - 1]]), [[0, V4_MAX]], 'touching at the top');
  t.same(subtractRanges([[0, V4_MAX]], [[0, 0]]), [[1, V4_MAX]]);
  t.same(subtractRanges([[0, V4_MAX]], [[V4_MAX, V4_MAX]]), [[0, V4_MAX - 1]]);
  t.same(subtractRanges([[0, V4_MAX]], [[0, V4_MAX]]), []);
  t.same(subtractRanges([[0, PORT_MAX]], [[1, PORT_MAX - 1]]), [[0, 0], [PORT_MAX, PORT_MAX]]);
  t.same(subtractRanges([], [[0, 5]]), []);
  t.same(subtractRanges([[3, 9]], []), [[3, 9]]);
});

t.test('NumberSet.has agrees with the brute-force set, and covers 0 and PORT_MAX', async (t) => {
  fc.assert(
    fc.property(fc.array(arbRange, { maxLength: 8 }), (rs) => {
      const s = new NumberSet(mergeRanges(rs));
      const m = members(rs);
      for (let i = 0; i < U; i++) if (s.has(i) !== m[i]) return false;
      return s.empty === (rs.length === 0);
    }),
    { numRuns: 1000 },
  );
  const edges = new NumberSet([[0, 0], [PORT_MAX, PORT_MAX]]);
  t.ok(edges.has(0));
  t.ok(edges.has(PORT_MAX));
  t.notOk(edges.has(1));
  t.notOk(edges.has(PORT_MAX - 1));
});
