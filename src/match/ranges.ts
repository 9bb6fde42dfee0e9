/**
 * Sets of addresses and ports as sorted, merged, inclusive ranges.
 *
 * Compile time works on plain arrays (IPv4 as numbers, IPv6 as bigint) so set algebra (union, except) is exact;
 * the result is frozen into typed arrays for the packet path. IPv6 ranges never include the IPv4-mapped block
 * ::ffff:0:0/96: IPv4 packets are matched by IPv4 ranges only (packet/types.ts stores IPv4 addresses mapped).
 */
/** The IPv4-mapped block ::ffff:0:0/96 (RFC 4291 §2.5.5.2); IPv6 CIDRs never cover it (0.0.0.0/0 is how a policy says "all IPv4"). */
export const V6_MAPPED_LO = 0xffffn << 32n;
export const V6_MAPPED_HI = V6_MAPPED_LO | 0xffffffffn;

export type Range = [number, number];
export type BigRange = [bigint, bigint];

export const V4_MAX = 0xffffffff;
export const V6_MAX = (1n << 128n) - 1n;
export const PORT_MAX = 0xffff;

/** Sorts and merges touching/overlapping ranges. */
export function mergeRanges(ranges: Range[]): Range[] {
  const sorted = ranges.map((r): Range => [r[0], r[1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push(r);
  }
  return out;
}

export function mergeBigRanges(ranges: BigRange[]): BigRange[] {
  const sorted = ranges.map((r): BigRange => [r[0], r[1]]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const out: BigRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r[0] <= last[1] + 1n) last[1] = last[1] > r[1] ? last[1] : r[1];
    else out.push(r);
  }
  return out;
}

/** a − b, both merged. */
export function subtractRanges(a: Range[], b: Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const [lo0, hi] of a) {
    let lo = lo0;
    while (j < b.length && (b[j] as Range)[1] < lo) j++;
    let k = j;
    while (lo <= hi && k < b.length && (b[k] as Range)[0] <= hi) {
      const [blo, bhi] = b[k] as Range;
      if (blo > lo) out.push([lo, blo - 1]);
      lo = Math.max(lo, bhi + 1);
      k++;
    }
    if (lo <= hi) out.push([lo, hi]);
  }
  return out;
}

export function subtractBigRanges(a: BigRange[], b: BigRange[]): BigRange[] {
  const out: BigRange[] = [];
  let j = 0;
  for (const [lo0, hi] of a) {
    let lo = lo0;
    while (j < b.length && (b[j] as BigRange)[1] < lo) j++;
    let k = j;
    while (lo <= hi && k < b.length && (b[k] as BigRange)[0] <= hi) {
      const [blo, bhi] = b[k] as BigRange;
      if (blo > lo) out.push([lo, blo - 1n]);
      lo = lo > bhi + 1n ? lo : bhi + 1n;
      k++;
    }
    if (lo <= hi) out.push([lo, hi]);
  }
  return out;
}

/** Every IPv6 address that is not IPv4-mapped. */
export function allV6(): BigRange[] {
  return [
    [0n, V6_MAPPED_LO - 1n],
    [V6_MAPPED_HI + 1n, V6_MAX],
  ];
}

/** Compile-time address set. */
export interface AddressRanges {
  v4: Range[];
  v6: BigRange[];
}

export function isAllAddresses(a: AddressRanges): boolean {
  const full6 = allV6();
  return (
    a.v4.length === 1 &&
    (a.v4[0] as Range)[0] === 0 &&
    (a.v4[0] as Range)[1] === V4_MAX &&
    a.v6.length === 2 &&
    a.v6.every((r, i) => r[0] === (full6[i] as BigRange)[0] && r[1] === (full6[i] as BigRange)[1])
  );
}

/**
 * Packet-path form of an address set: IPv4 as [lo, hi] pairs; IPv6 as 8 words per range (lo then hi, word 0 most
 * significant). Membership is a binary search.
 */
export class AddressSet {
  readonly v4: Uint32Array;
  readonly v6: Uint32Array;
  constructor(r: AddressRanges) {
    this.v4 = new Uint32Array(r.v4.length * 2);
    r.v4.forEach((x, i) => {
      this.v4[2 * i] = x[0];
      this.v4[2 * i + 1] = x[1];
    });
    this.v6 = new Uint32Array(r.v6.length * 8);
    r.v6.forEach((x, i) => {
      writeWords(x[0], this.v6, 8 * i);
      writeWords(x[1], this.v6, 8 * i + 4);
    });
  }

  has(addr: ArrayLike<number>): boolean {
    if (addr[0] === 0 && addr[1] === 0 && addr[2] === 0xffff) return hasV4(this.v4, addr[3]!);
    return hasV6(this.v6, addr);
  }

  get empty(): boolean {
    return this.v4.length === 0 && this.v6.length === 0;
  }
}

function hasV4(pairs: Uint32Array, a: number): boolean {
  let lo = 0;
  let hi = (pairs.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (pairs[2 * mid + 1]! < a) lo = mid + 1;
    else if (pairs[2 * mid]! > a) hi = mid - 1;
    else return true;
  }
  return false;
}

/** Lexicographic compare of addr against 4 words at w[off]. */
export function cmp6(addr: ArrayLike<number>, w: Uint32Array, off: number): number {
  for (let i = 0; i < 4; i++) {
    const a = addr[i]! >>> 0;
    const b = w[off + i]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

function hasV6(ranges: Uint32Array, addr: ArrayLike<number>): boolean {
  let lo = 0;
  let hi = (ranges.length >> 3) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cmp6(addr, ranges, 8 * mid + 4) > 0) lo = mid + 1;
    else if (cmp6(addr, ranges, 8 * mid) < 0) hi = mid - 1;
    else return true;
  }
  return false;
}

export function writeWords(v: bigint, out: Uint32Array, off: number): void {
  out[off] = Number((v >> 96n) & 0xffffffffn);
  out[off + 1] = Number((v >> 64n) & 0xffffffffn);
  out[off + 2] = Number((v >> 32n) & 0xffffffffn);
  out[off + 3] = Number(v & 0xffffffffn);
}

/** Packet-path form of a port / ICMP number set: [lo, hi] pairs. */
export class NumberSet {
  readonly pairs: Uint32Array;
  constructor(ranges: Range[]) {
    this.pairs = new Uint32Array(ranges.length * 2);
    ranges.forEach((x, i) => {
      this.pairs[2 * i] = x[0];
      this.pairs[2 * i + 1] = x[1];
    });
  }
  has(n: number): boolean {
    return hasV4(this.pairs, n);
  }
  get empty(): boolean {
    return this.pairs.length === 0;
  }
}
