/**
 * Interned GENEVE headers for the flow table (docs/architecture.md §2: packets we originate on a flow go out inside
 * the newest GENEVE header GWLB sent with it, byte for byte).
 *
 * GWLB's header is the same for every flow of one endpoint except the 4 bytes of the flow cookie (AWS option type
 * 3): flags, VNI, protocol type, endpoint id and attachment id are per endpoint. So the pool keeps each distinct
 * header once, with its cookie bytes zeroed (a *template*), together with the outer addresses it came with; a flow
 * keeps a template index and its own cookie (FlowTable.flowCookie). copy() writes the template and then the flow's
 * cookie at the template's cookie offset, which gives back exactly the bytes received. A header without a cookie
 * option is interned whole.
 *
 *   buckets[hash & mask] ─> template + 1 ─chain─> template ─> -1      refs[t]: flows using t; 0 ⇒ t is freed
 *
 * Bounded: at most `maxTemplates` templates (storage doubles from 16 up to it, TEMPLATE_BYTES each). When every
 * template is in use, acquire() returns -1 and the flow keeps no header (FlowTable counts headerOverflows).
 * Cost per packet: the table first compares the packet's header with the flow's current template (no hashing);
 * only a different header (a new flow, a new GWLB node) looks the pool up.
 */

/** RFC 8926 §3.4: Opt Len is 6 bits of 4-byte words, so a GENEVE header is at most 8 + 63 × 4 bytes. */
export const GENEVE_MAX_HEADER_BYTES = 260;
/** AWS flow cookie option data (GWLB user guide): 4 bytes. */
const COOKIE_BYTES = 4;
/** Template stride in the byte pool. */
const TEMPLATE_BYTES = GENEVE_MAX_HEADER_BYTES;
/** Distinct headers (endpoint × GWLB node address × protocol type …) a table keeps at most: ≤ 4 MiB of bytes. */
export const FLOW_MAX_HEADER_TEMPLATES = 16_384;
const INITIAL_TEMPLATES = 16;
/** Bytes per template: the header bytes and length, cookie offset, two addresses, hash, references, chain. */
const TEMPLATE_RECORD_BYTES = TEMPLATE_BYTES + 2 + 2 + 4 * 5;

/** Storage of a full pool of `maxTemplates` templates (buckets included). */
export function headerPoolBytes(maxTemplates: number = FLOW_MAX_HEADER_TEMPLATES): number {
  let buckets = 1;
  while (buckets < maxTemplates * 2) buckets *= 2;
  return maxTemplates * TEMPLATE_RECORD_BYTES + buckets * 4;
}

/** FNV-1a over the header (cookie bytes read as 0) and both outer addresses. */
function templateHash(buf: Uint8Array, off: number, len: number, cookieAt: number, localAddr: number, gwlbAddr: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) {
    const b = cookieAt >= 0 && i >= cookieAt && i < cookieAt + COOKIE_BYTES ? 0 : (buf[off + i] as number);
    h = Math.imul(h ^ b, 0x01000193);
  }
  h = Math.imul(h ^ localAddr, 0x01000193);
  h = Math.imul(h ^ gwlbAddr, 0x01000193);
  return (h ^ len) >>> 0;
}

export class HeaderPool {
  readonly maxTemplates: number;
  /** Templates in use (referenced by at least one flow). */
  size = 0;
  private capacity = 0;
  private highWater = 0;
  private freeHead = -1;
  private bytes = new Uint8Array(0);
  private len = new Uint16Array(0);
  /** Offset of the cookie bytes within the header, -1 when the header has no cookie option. */
  private cookieAt = new Int16Array(0);
  private localAddr = new Uint32Array(0);
  private gwlbAddr = new Uint32Array(0);
  private hash = new Uint32Array(0);
  private refs = new Uint32Array(0);
  /** Next template in the bucket (or in the free list), -1 at the end. */
  private chain = new Int32Array(0);
  private readonly buckets: Int32Array;
  private readonly mask: number;

  constructor(maxTemplates: number) {
    this.maxTemplates = maxTemplates;
    let n = 1;
    while (n < maxTemplates * 2) n *= 2;
    this.buckets = new Int32Array(n);
    this.mask = n - 1;
  }

  /** True when template t holds exactly these header bytes (cookie window aside) and outer addresses. */
  matches(t: number, buf: Uint8Array, off: number, len: number, cookieAt: number, localAddr: number, gwlbAddr: number): boolean {
    if (this.len[t] !== len || this.cookieAt[t] !== cookieAt || this.localAddr[t] !== localAddr || this.gwlbAddr[t] !== gwlbAddr) return false;
    const bytes = this.bytes;
    const at = t * TEMPLATE_BYTES;
    for (let i = 0; i < len; i++) {
      if (i === cookieAt) {
        i += COOKIE_BYTES - 1;
        continue;
      }
      if (bytes[at + i] !== buf[off + i]) return false;
    }
    return true;
  }

  /** The template for this header, created if needed, with one more reference; -1 when the pool is full. */
  acquire(buf: Uint8Array, off: number, len: number, cookieAt: number, localAddr: number, gwlbAddr: number): number {
    const h = templateHash(buf, off, len, cookieAt, localAddr, gwlbAddr);
    const b = h & this.mask;
    for (let t = (this.buckets[b] as number) - 1; t >= 0; t = this.chain[t] as number) {
      if (this.hash[t] === h && this.matches(t, buf, off, len, cookieAt, localAddr, gwlbAddr)) {
        this.refs[t] = (this.refs[t] as number) + 1;
        return t;
      }
    }
    let t = this.freeHead;
    if (t >= 0) {
      this.freeHead = this.chain[t] as number;
    } else {
      if (this.highWater === this.capacity && !this.grow()) return -1;
      t = this.highWater++;
    }
    const at = t * TEMPLATE_BYTES;
    const bytes = this.bytes;
    for (let i = 0; i < len; i++) bytes[at + i] = cookieAt >= 0 && i >= cookieAt && i < cookieAt + COOKIE_BYTES ? 0 : (buf[off + i] as number);
    this.len[t] = len;
    this.cookieAt[t] = cookieAt;
    this.localAddr[t] = localAddr;
    this.gwlbAddr[t] = gwlbAddr;
    this.hash[t] = h;
    this.refs[t] = 1;
    this.chain[t] = (this.buckets[b] as number) - 1;
    this.buckets[b] = t + 1;
    this.size++;
    return t;
  }

  /** Drops one reference; the template is freed with its last. */
  release(t: number): void {
    const r = (this.refs[t] as number) - 1;
    this.refs[t] = r;
    if (r > 0) return;
    const b = (this.hash[t] as number) & this.mask;
    let prev = (this.buckets[b] as number) - 1;
    if (prev === t) {
      this.buckets[b] = (this.chain[t] as number) + 1;
    } else {
      while ((this.chain[prev] as number) !== t) prev = this.chain[prev] as number;
      this.chain[prev] = this.chain[t] as number;
    }
    this.chain[t] = this.freeHead;
    this.freeHead = t;
    this.size--;
  }

  /** Writes template t with `cookie` in its cookie bytes to target[targetOff ...]; returns the length. */
  copy(t: number, cookie: number, target: Uint8Array, targetOff: number): number {
    const len = this.len[t] as number;
    const at = t * TEMPLATE_BYTES;
    const bytes = this.bytes;
    for (let i = 0; i < len; i++) target[targetOff + i] = bytes[at + i] as number;
    const c = this.cookieAt[t] as number;
    if (c >= 0) {
      // The cookie option's data, big-endian as GWLB sent it.
      const p = targetOff + c;
      target[p] = cookie >>> 24;
      target[p + 1] = (cookie >>> 16) & 0xff;
      target[p + 2] = (cookie >>> 8) & 0xff;
      target[p + 3] = cookie & 0xff;
    }
    return len;
  }

  lengthOf(t: number): number {
    return this.len[t] as number;
  }

  localAddrOf(t: number): number {
    return this.localAddr[t] as number;
  }

  gwlbAddrOf(t: number): number {
    return this.gwlbAddr[t] as number;
  }

  private grow(): boolean {
    if (this.capacity >= this.maxTemplates) return false;
    const cap = Math.min(Math.max(this.capacity * 2, INITIAL_TEMPLATES), this.maxTemplates);
    const bytes = new Uint8Array(cap * TEMPLATE_BYTES);
    bytes.set(this.bytes);
    this.bytes = bytes;
    this.len = grown(Uint16Array, this.len, cap);
    this.cookieAt = grown(Int16Array, this.cookieAt, cap);
    this.localAddr = grown(Uint32Array, this.localAddr, cap);
    this.gwlbAddr = grown(Uint32Array, this.gwlbAddr, cap);
    this.hash = grown(Uint32Array, this.hash, cap);
    this.refs = grown(Uint32Array, this.refs, cap);
    this.chain = grown(Int32Array, this.chain, cap);
    this.capacity = cap;
    return true;
  }
}

function grown<T extends Uint16Array | Int16Array | Uint32Array | Int32Array>(ctor: { new (n: number): T }, old: T, n: number): T {
  const a = new ctor(n);
  a.set(old as never);
  return a;
}
