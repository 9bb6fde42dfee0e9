/**
 * Who may talk to UDP 6081 (docs/configuration.md, "Sources and instances": only the GWLB, never the appliance's
 * own addresses). Two numeric checks on the outer source address the batch loop runs before any decoding:
 *
 *  - loop guard: a datagram from one of the appliance's own addresses is either our own health probe or a
 *    datagram we (or another process on this host) sent to ourselves; processing it as traffic returns it to
 *    <own address>:6081 — to ourselves — and it loops forever;
 *  - --gwlb-sources: when set, only outer sources inside these IPv4 CIDRs (the GWLB's subnets) are processed.
 *
 * Both are allocation-free: sorted / parallel Uint32Arrays scanned with plain integer compares.
 */
import { networkInterfaces } from 'node:os';
import { tryIpv4ToU32, ipv4ToU32 } from '../packet/address.js';

/** Entries of --gwlb-sources (GWLB spans at most one subnet per Availability Zone; 64 leaves ample room). */
export const MAX_GWLB_SOURCES = 64;

export interface CidrList {
  /** Network addresses (already masked) and masks, parallel; length 0 = everything allowed. */
  nets: Uint32Array;
  masks: Uint32Array;
}

export class CidrListError extends Error {
  readonly code = 'GWI_ERR_CIDR_LIST';
  constructor(message: string) {
    super(message);
    this.name = 'CidrListError';
  }
}

/** "10.0.1.0/24, 10.0.2.0/24" → CidrList. A bare address is a /32. Empty string → allow all. Throws CidrListError. */
export function parseCidrList(text: string): CidrList {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length > MAX_GWLB_SOURCES) throw new CidrListError(`at most ${MAX_GWLB_SOURCES} CIDRs (got ${items.length})`);
  const nets = new Uint32Array(items.length);
  const masks = new Uint32Array(items.length);
  items.forEach((item, i) => {
    const m = /^([0-9.]+)(?:\/(\d{1,2}))?$/.exec(item);
    const addr = m === null ? undefined : tryIpv4ToU32(m[1] as string);
    const bits = m?.[2] === undefined ? 32 : Number(m[2]);
    if (addr === undefined || bits > 32) throw new CidrListError(`${JSON.stringify(item)} is not an IPv4 CIDR like 10.0.1.0/24`);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    nets[i] = (addr & mask) >>> 0;
    masks[i] = mask;
  });
  return { nets, masks };
}

/** IPv4 addresses of this network namespace's interfaces plus the listen address, sorted, deduplicated. */
export function ownAddresses(listen: string): Uint32Array {
  const set = new Set<number>();
  if (listen !== '0.0.0.0') set.add(ipv4ToU32(listen));
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') set.add(ipv4ToU32(a.address));
  }
  return Uint32Array.from([...set].sort((a, b) => a - b));
}

/** True when addr is in the sorted list (binary search: hosts can carry dozens of secondary addresses). */
export function inSorted(list: Uint32Array, addr: number): boolean {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = list[mid]!;
    if (v === addr) return true;
    if (v < addr) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** True when the list is empty (no restriction) or addr is inside one of its CIDRs. */
export function inCidrs(list: CidrList, addr: number): boolean {
  const n = list.nets.length;
  if (n === 0) return true;
  for (let i = 0; i < n; i++) if (((addr & list.masks[i]!) >>> 0) === list.nets[i]) return true;
  return false;
}
