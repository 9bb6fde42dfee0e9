/**
 * The GWLB emulator's logic: what AWS Gateway Load Balancer does to packets, without I/O, so unit tests drive it
 * with buffers and an injected clock. src/lab/emulator-main.ts wires it to a TUN device and sockets.
 *
 * Forward path (a routed inner packet captured from the TUN):
 *   decode the inner IP packet → flow key (5-tuple for TCP/UDP; 3-tuple for other protocols; or the configured
 *   3-tuple / 2-tuple stickiness) → flow lookup (symmetric: both directions are one flow) → a new flow picks a
 *   target among the routable ones by hash and gets a fresh random flow cookie → the flow's GENEVE header
 *   (docs/architecture.md §2: Ver 0, VNI 0, options class 0x0108 type 1 endpoint id, type 2 attachment id 0, type 3 cookie)
 *   is written in front of the inner packet → sent from the emulator's address to target:6081.
 *
 * Return path (an IPv4 datagram captured by a raw socket on the emulator's address, port 6081):
 *   the appliance must send the inner packet back inside exactly the GENEVE header bytes it received, with the
 *   outer IPs swapped (source = the target address the flow was sent to) and the UDP ports kept (source = the
 *   port the emulator sent from, destination = 6081), with a valid UDP checksum when it is not zero. Anything
 *   else is counted by reason and not delivered.
 *
 * GWLB behaviours (AWS Gateway Load Balancer user guide):
 * - Stickiness: "5-tuple (for TCP/UDP flows)" by default, 3-tuple (source IP, destination IP, protocol) or 2-tuple
 *   (source IP, destination IP) when configured; non-TCP/UDP traffic is always hashed on the 3-tuple.
 * - Idle timeout: TCP 350 s, other flows 120 s; after it the flow entry is forgotten and a reused 5-tuple is a new
 *   flow with a new cookie (and possibly another target).
 * - Health: new flows go only to targets that are not unhealthy; existing flows stay on their target even when it
 *   turns unhealthy (target failover "no_rebalance", the default; "rebalance" moves them). When every target is
 *   unhealthy the load balancer fails open: "If a target group contains only unhealthy registered targets, the
 *   load balancer routes requests to all those targets, regardless of their health status" (ELB user guides,
 *   target group health). `allUnhealthy: 'drop'` exists for experiments.
 */
import { randomInt } from 'node:crypto';
import { Buffer } from 'node:buffer';
import {
  GENEVE_PROTOCOL_IPV4,
  GENEVE_PROTOCOL_IPV6,
  GWLB_GENEVE_HEADER_LENGTH,
  GWLB_MAX_DATAGRAM_BYTES,
  GWLB_MAX_INNER_BYTES,
  decodeGeneve,
  encodeGeneveHeader,
  parseEndpointId,
} from '../geneve/codec.js';
import { createGeneveHeader } from '../geneve/types.js';
import { parseIp, formatIp, ipv4ToU32 } from '../packet/address.js';
import { fold, pseudoSumV4, sum16 } from '../packet/checksum.js';
import { INNER_PROTOCOL_ANY, decodeInner } from '../packet/decode.js';
import { IP_PROTO, createInnerPacket, type InnerPacket } from '../packet/types.js';
import { tupleHash } from '../flow/key.js';
import { LAB_HEALTH_DEFAULTS, TargetHealth, type HealthCheckSettings } from './health.js';

export type Stickiness = '5-tuple' | '3-tuple' | '2-tuple';

/** A simulated GWLB endpoint (the `vpce-` id in option type 1) and the inner prefixes whose flows use it. */
export interface EmulatorEndpoint {
  id: string;
  /** Inner prefixes ("10.77.1.0/24", "fd77:1::/64"); a flow uses the first endpoint matching either address. */
  cidrs: string[];
}

export interface EmulatorSettings {
  /** The emulator's outer IPv4 address (the "GWLB node"); returns must come to it. */
  emulatorAddr: string;
  /** Destination port of GENEVE both ways (RFC 8926 §3.3). */
  genevePort: number;
  stickiness: Stickiness;
  /** GWLB TCP idle timeout (350 s; configurable 60-6000 s on GWLB). */
  tcpIdleTimeoutMs: number;
  /** GWLB idle timeout for UDP and every other protocol (120 s). */
  otherIdleTimeoutMs: number;
  /** The first endpoint is the default for flows no prefix matches. */
  endpoints: EmulatorEndpoint[];
  /** What new flows do when no target is routable (GWLB: fail open to all targets). */
  allUnhealthy: 'fail-open' | 'drop';
  /** Existing flows of a target that turns unhealthy (GWLB target_failover.on_unhealthy). */
  onUnhealthy: 'no-rebalance' | 'rebalance';
  /** Flow table bound: new flows beyond it are dropped and counted. */
  maxFlows: number;
  /**
   * Outer source port per packet: GWLB's policy is not documented, so the lab can vary it. 'per-flow': one port
   * per flow (by hash); 'per-direction': the two directions of a flow use different ports (an appliance must
   * still keep both directions together).
   */
  sourcePortMode: 'per-flow' | 'per-direction';
  health: HealthCheckSettings;
  /**
   * Raw GENEVE options (hex, whole RFC 8926 §3.5 options) appended after the AWS ones in every header, e.g. a
   * non-critical option of another class: the appliance must send them back verbatim (docs/architecture.md §2). Empty: GWLB's
   * exact 40-byte header.
   */
  extraOptionsHex: string;
  /** Seed of the flow hash that picks targets and ports. */
  hashSeed: number;
}

export const DEFAULT_ENDPOINT_ID = 'vpce-01234567890abcdef';

export const DEFAULT_EMULATOR_SETTINGS: Readonly<EmulatorSettings> = Object.freeze({
  emulatorAddr: '127.0.0.2',
  genevePort: 6081,
  stickiness: '5-tuple',
  tcpIdleTimeoutMs: 350_000, // 350 s
  otherIdleTimeoutMs: 120_000, // 120 s
  endpoints: [{ id: DEFAULT_ENDPOINT_ID, cidrs: [] }],
  allUnhealthy: 'fail-open',
  onUnhealthy: 'no-rebalance',
  maxFlows: 65_536,
  sourcePortMode: 'per-flow',
  health: LAB_HEALTH_DEFAULTS,
  extraOptionsHex: '',
  hashSeed: 0,
} satisfies EmulatorSettings);

/** One registered appliance. */
export interface TargetSpec {
  name: string;
  /** IPv4 address the appliance receives GENEVE on. */
  addr: string;
  /** GENEVE port (6081). */
  port: number;
  /** Health check port (the appliance's admin port for http, any listening port for tcp). */
  healthPort: number;
}

export class EmulatorTarget {
  readonly addrU32: number;
  readonly health: TargetHealth;
  encapsulatedPackets = 0;
  encapsulatedBytes = 0;
  returnsAccepted = 0;
  flows = 0;
  constructor(
    readonly spec: Readonly<TargetSpec>,
    settings: Readonly<HealthCheckSettings>,
    now: number,
  ) {
    this.addrU32 = ipv4ToU32(spec.addr);
    this.health = new TargetHealth(settings, now);
  }
}

/** Why a returned datagram was refused. Index = code - 1 of onReturnDatagram. */
export const RETURN_REJECT_REASONS = [
  /** Not a whole IPv4/UDP datagram (header lengths inconsistent with the bytes). */
  'malformed-outer',
  /** Outer source is no registered target. */
  'unknown-source',
  /** Larger than GWLB's 8568-byte maximum datagram (the appliance must never emit one). */
  'too-large',
  /** Non-zero UDP checksum that does not verify. */
  'bad-udp-checksum',
  /** The GENEVE header does not decode (RFC 8926 rules). */
  'bad-geneve',
  /** No flow cookie option. */
  'missing-cookie',
  /** Cookie of no live flow (never sent, or the flow expired). */
  'unknown-cookie',
  /** Header bytes differ from those sent for the flow (an option changed, dropped, reordered, or flags). */
  'header-mismatch',
  /** Outer IPs not swapped: the return comes from a target other than the one the flow was sent to. */
  'wrong-target',
  /** UDP source port is not the port the emulator sent the flow from. */
  'wrong-source-port',
  /** The inner packet belongs to another flow than the cookie's. */
  'inner-mismatch',
] as const;
export type ReturnRejectReason = (typeof RETURN_REJECT_REASONS)[number];

export const RETURN = {
  ACCEPTED: 0,
  /** Not addressed to the emulator's GENEVE port: not a return (e.g. our own datagrams to the appliances). */
  IGNORED: -1,
} as const;

export interface EmulatorIo {
  /**
   * Send buf[off, off + len) (GENEVE header + inner packet) as a UDP payload from the emulator's source port
   * number `portIndex` to target addr:port. Returns false when it could not be sent.
   */
  send(target: EmulatorTarget, portIndex: number, buf: Buffer, off: number, len: number): boolean;
  /** Write an inner IP packet into the TUN device (the kernel routes it on). */
  deliver(buf: Buffer, off: number, len: number): boolean;
}

export interface EmulatorCounters {
  tunPackets: number;
  tunBytes: number;
  innerUndecodable: number;
  innerTooLarge: number;
  linkLocalIgnored: number;
  noTargetDrops: number;
  flowTableFullDrops: number;
  sendDrops: number;
  flowsCreated: number;
  flowsExpired: number;
  flowsRebalanced: number;
  failOpenFlows: number;
  returnsAccepted: number;
  returnsIgnored: number;
  returnsRejected: Record<ReturnRejectReason, number>;
  deliverDrops: number;
}

export class EmulatorFlow {
  /** Next flow in the same hash bucket. */
  next: EmulatorFlow | null = null;
  packets = 0;
  bytes = 0;
  returns = 0;
  constructor(
    readonly hash: number,
    /** Protocol in the key (0 for 2-tuple stickiness). */
    readonly protocol: number,
    /** Initiator endpoint (the side whose packet created the flow); ports 0 when not in the key. */
    readonly a: Uint32Array,
    readonly aPort: number,
    readonly b: Uint32Array,
    readonly bPort: number,
    public target: EmulatorTarget,
    readonly cookie: number,
    readonly endpointId: string,
    /** The exact GENEVE header sent with every packet of this flow (and expected back). */
    readonly header: Buffer,
    readonly portIndex: number,
    public idleTimeoutMs: number,
    public lastSeenMs: number,
    readonly createdMs: number,
  ) {}
}

export interface FlowInfo {
  protocol: number;
  a: string;
  aPort: number;
  b: string;
  bPort: number;
  target: string;
  cookie: number;
  endpointId: string;
  packets: number;
  returns: number;
  idleMs: number;
  ageMs: number;
}

interface Prefix {
  net: Uint32Array;
  bits: number;
}

function parsePrefix(cidr: string): Prefix {
  const slash = cidr.indexOf('/');
  const addrText = slash < 0 ? cidr : cidr.slice(0, slash);
  const net = parseIp(addrText);
  const v4 = addrText.includes('.');
  const max = v4 ? 32 : 128;
  const len = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max) throw new RangeError(`bad prefix length in ${cidr}`);
  return { net, bits: v4 ? 96 + len : len };
}

function prefixContains(p: Prefix, addr: Uint32Array): boolean {
  let bits = p.bits;
  for (let w = 0; w < 4 && bits > 0; w++) {
    const take = bits >= 32 ? 32 : bits;
    const mask = take === 32 ? 0xffffffff : ~(0xffffffff >>> take);
    if (((addr[w]! ^ p.net[w]!) & mask) !== 0) return false;
    bits -= take;
  }
  return true;
}

/** IPv6 link-local source (fe80::/10) or multicast destination (ff00::/8); IPv4 multicast/broadcast destination. */
function isLinkLocalOrMulticast(pkt: InnerPacket): boolean {
  if (pkt.ipVersion === 6) return pkt.src[0]! >>> 22 === 0x3fa || pkt.dst[0]! >>> 24 === 0xff;
  const d = pkt.dst[3]!;
  return d >>> 28 === 0xe || d === 0xffffffff;
}

function sameAddr(x: Uint32Array, y: Uint32Array): boolean {
  return x[0] === y[0] && x[1] === y[1] && x[2] === y[2] && x[3] === y[3];
}

/**
 * Header room the TUN reader must leave before each inner packet: the GENEVE header is written there. GWLB's
 * header is 40 bytes; 24 more allow test options (extraOptionsHex).
 */
export const ENCAP_HEADROOM = GWLB_GENEVE_HEADER_LENGTH + 24;

// Offsets in the outer IPv4/UDP datagram (RFC 791 §3.1, RFC 768).
const IPV4_MIN_HEADER = 20;
const IPV4_IHL_MASK = 0x0f;
const IPV4_TOTAL_LENGTH_OFF = 2;
const IPV4_PROTOCOL_OFF = 9;
const IPV4_SRC_OFF = 12;
const IPV4_DST_OFF = 16;
const UDP_HEADER = 8;
const UDP_LENGTH_OFF = 4;
const UDP_CHECKSUM_OFF = 6;
/** Outer IPv4 (20) + UDP (8) header bytes. */
const OUTER_IPV4_UDP_BYTES = IPV4_MIN_HEADER + UDP_HEADER;

export class GwlbEmulator {
  readonly settings: Readonly<EmulatorSettings>;
  readonly targets: EmulatorTarget[] = [];
  readonly counters: EmulatorCounters;
  /** Symmetric flow hash → bucket chain. */
  private readonly buckets = new Map<number, EmulatorFlow>();
  private readonly byCookie = new Map<number, EmulatorFlow>();
  private readonly endpoints: { id: string; hi: number; lo: number; prefixes: Prefix[] }[];
  private readonly emulatorAddrU32: number;
  private readonly pkt = createInnerPacket();
  private readonly retPkt = createInnerPacket();
  private readonly gh = createGeneveHeader();
  private readonly eligible: EmulatorTarget[] = [];
  private readonly extraOptions: Buffer;
  /** Bytes written in front of each inner packet (40 for GWLB's header, more with extraOptionsHex). */
  readonly headerLength: number;

  constructor(
    settings: Partial<EmulatorSettings>,
    private readonly io: EmulatorIo,
    /** Actual UDP source ports of the emulator's sending sockets, by index. */
    readonly sourcePorts: readonly number[],
    private readonly now: () => number = Date.now,
  ) {
    this.settings = Object.freeze({ ...DEFAULT_EMULATOR_SETTINGS, ...settings });
    if (sourcePorts.length === 0) throw new RangeError('at least one source port is needed');
    if (this.settings.endpoints.length === 0) throw new RangeError('at least one endpoint is needed');
    this.endpoints = this.settings.endpoints.map((e) => {
      const id = parseEndpointId(e.id);
      if (id === undefined) throw new RangeError(`bad endpoint id ${JSON.stringify(e.id)} (want vpce- + 17 hex digits)`);
      return { id: e.id, hi: id.hi, lo: id.lo, prefixes: e.cidrs.map(parsePrefix) };
    });
    this.emulatorAddrU32 = ipv4ToU32(this.settings.emulatorAddr);
    this.extraOptions = Buffer.from(this.settings.extraOptionsHex, 'hex');
    if (this.extraOptions.length * 2 !== this.settings.extraOptionsHex.length || this.extraOptions.length % 4 !== 0) {
      throw new RangeError('extraOptionsHex must be hex of whole 4-byte words');
    }
    this.headerLength = GWLB_GENEVE_HEADER_LENGTH + this.extraOptions.length;
    if (this.headerLength > ENCAP_HEADROOM) throw new RangeError(`extra options longer than ${ENCAP_HEADROOM - GWLB_GENEVE_HEADER_LENGTH} bytes`);
    const rejected = {} as Record<ReturnRejectReason, number>;
    for (const r of RETURN_REJECT_REASONS) rejected[r] = 0;
    this.counters = {
      tunPackets: 0,
      tunBytes: 0,
      innerUndecodable: 0,
      innerTooLarge: 0,
      linkLocalIgnored: 0,
      noTargetDrops: 0,
      flowTableFullDrops: 0,
      sendDrops: 0,
      flowsCreated: 0,
      flowsExpired: 0,
      flowsRebalanced: 0,
      failOpenFlows: 0,
      returnsAccepted: 0,
      returnsIgnored: 0,
      returnsRejected: rejected,
      deliverDrops: 0,
    };
  }

  // ----- targets -------------------------------------------------------------------------------------------------

  addTarget(spec: TargetSpec): EmulatorTarget {
    if (this.targets.some((t) => t.spec.name === spec.name)) throw new RangeError(`target ${spec.name} exists`);
    const t = new EmulatorTarget({ ...spec }, this.settings.health, this.now());
    this.targets.push(t);
    return t;
  }

  /** Deregisters a target; its flows are forgotten (their next packet is a new flow). */
  removeTarget(name: string): boolean {
    const i = this.targets.findIndex((t) => t.spec.name === name);
    if (i < 0) return false;
    const t = this.targets[i] as EmulatorTarget;
    this.targets.splice(i, 1);
    for (const f of [...this.byCookie.values()]) if (f.target === t) this.forget(f);
    return true;
  }

  target(name: string): EmulatorTarget | undefined {
    return this.targets.find((t) => t.spec.name === name);
  }

  /** Target for a new flow with hash `hash`, or undefined (counted by the caller). */
  private pickTarget(hash: number, exclude?: EmulatorTarget): EmulatorTarget | undefined {
    const eligible = this.eligible;
    eligible.length = 0;
    for (const t of this.targets) if (t.health.routable && t !== exclude) eligible.push(t);
    if (eligible.length === 0) {
      if (this.settings.allUnhealthy !== 'fail-open' || exclude !== undefined) return undefined;
      // Fail open: every registered target, regardless of health, by the same hash.
      for (const t of this.targets) eligible.push(t);
      if (eligible.length === 0) return undefined;
      this.counters.failOpenFlows++;
    }
    return eligible[hash % eligible.length];
  }

  // ----- flows ---------------------------------------------------------------------------------------------------

  get flowCount(): number {
    return this.byCookie.size;
  }

  private forget(f: EmulatorFlow): void {
    let prev: EmulatorFlow | null = null;
    let cur = this.buckets.get(f.hash) ?? null;
    while (cur !== null && cur !== f) {
      prev = cur;
      cur = cur.next;
    }
    if (cur === f) {
      if (prev === null) {
        if (f.next === null) this.buckets.delete(f.hash);
        else this.buckets.set(f.hash, f.next);
      } else {
        prev.next = f.next;
      }
    }
    f.next = null;
    this.byCookie.delete(f.cookie);
    f.target.flows--;
  }

  /** Forgets flows idle longer than their timeout. Returns how many. */
  sweep(now = this.now()): number {
    let n = 0;
    for (const f of [...this.byCookie.values()]) {
      if (now - f.lastSeenMs > f.idleTimeoutMs) {
        this.forget(f);
        n++;
      }
    }
    this.counters.flowsExpired += n;
    return n;
  }

  private newCookie(): number {
    for (;;) {
      // A random non-zero 32-bit value not used by a live flow. randomInt's bound is exclusive and < 2^48.
      const c = randomInt(1, 0x1_0000_0000);
      if (!this.byCookie.has(c)) return c;
    }
  }

  private endpointFor(src: Uint32Array, dst: Uint32Array): { id: string; hi: number; lo: number } {
    for (const e of this.endpoints) {
      for (const p of e.prefixes) if (prefixContains(p, src) || prefixContains(p, dst)) return e;
    }
    return this.endpoints[0] as { id: string; hi: number; lo: number };
  }

  /** The flow (live, unexpired) with this key, either direction; undefined otherwise. */
  private lookup(hash: number, proto: number, src: Uint32Array, sp: number, dst: Uint32Array, dp: number): EmulatorFlow | undefined {
    for (let f = this.buckets.get(hash) ?? null; f !== null; f = f.next) {
      if (f.protocol !== proto) continue;
      if (
        (f.aPort === sp && f.bPort === dp && sameAddr(f.a, src) && sameAddr(f.b, dst)) ||
        (f.aPort === dp && f.bPort === sp && sameAddr(f.a, dst) && sameAddr(f.b, src))
      ) {
        return f;
      }
    }
    return undefined;
  }

  /** Key fields of the decoded packet per the stickiness setting: [protocol, srcPort, dstPort]. */
  private keyOf(pkt: InnerPacket): [number, number, number] {
    const proto = pkt.protocol;
    if (this.settings.stickiness === '2-tuple') return [0, 0, 0];
    if (this.settings.stickiness === '3-tuple') return [proto, 0, 0];
    // 5-tuple applies to TCP and UDP; everything else (ICMP, later fragments, a first fragment without its whole
    // transport header) is a 3-tuple flow.
    if ((proto === IP_PROTO.TCP || proto === IP_PROTO.UDP) && !pkt.isLaterFragment && pkt.anomaly === 0) return [proto, pkt.srcPort, pkt.dstPort];
    return [proto, 0, 0];
  }

  /**
   * One inner packet read from the TUN at buf[off, off + len); buf must have ENCAP_HEADROOM writable bytes before
   * `off`. Encapsulates and sends it, or counts why not.
   */
  onTunPacket(buf: Buffer, off: number, len: number): void {
    const c = this.counters;
    c.tunPackets++;
    c.tunBytes += len;
    // GWLB never sends a datagram over 8568 bytes: inner ≤ 8500 with its 40-byte header (less with test options).
    if (len > GWLB_MAX_INNER_BYTES || OUTER_IPV4_UDP_BYTES + this.headerLength + len > GWLB_MAX_DATAGRAM_BYTES) {
      c.innerTooLarge++;
      return;
    }
    const pkt = this.pkt;
    // GWLB forwards IP packets whatever their transport header holds: a first fragment too short for its TCP/UDP
    // header (the tiny fragment attack) reaches the appliance, which must deal with it.
    if (decodeInner(buf, off, len, INNER_PROTOCOL_ANY, pkt) !== 0 && !pkt.isFragment) {
      c.innerUndecodable++;
      return;
    }
    if (isLinkLocalOrMulticast(pkt)) {
      // The gateway's own link-scope chatter on the TUN (IPv6 MLD/ND when it comes up): not routed traffic, so
      // nothing GWLB would ever see.
      c.linkLocalIgnored++;
      return;
    }
    const [proto, sp, dp] = this.keyOf(pkt);
    const hash = tupleHash(proto, pkt.src, sp, pkt.dst, dp, this.settings.hashSeed);
    const now = this.now();
    let flow = this.lookup(hash, proto, pkt.src, sp, pkt.dst, dp);
    if (flow !== undefined && now - flow.lastSeenMs > flow.idleTimeoutMs) {
      // GWLB forgot it: this packet starts a new flow with a new cookie.
      this.forget(flow);
      c.flowsExpired++;
      flow = undefined;
    }
    if (flow === undefined) {
      if (this.byCookie.size >= this.settings.maxFlows && this.sweep(now) === 0) {
        c.flowTableFullDrops++;
        return;
      }
      const target = this.pickTarget(hash);
      if (target === undefined) {
        c.noTargetDrops++;
        return;
      }
      const cookie = this.newCookie();
      const ep = this.endpointFor(pkt.src, pkt.dst);
      const header = encodeGeneveHeader({
        protocolType: pkt.ipVersion === 6 ? GENEVE_PROTOCOL_IPV6 : GENEVE_PROTOCOL_IPV4,
        vni: 0,
        endpointIdHi: ep.hi,
        endpointIdLo: ep.lo,
        attachmentIdHi: 0,
        attachmentIdLo: 0,
        flowCookie: cookie,
        extraOptions: this.extraOptions,
      });
      const timeout = pkt.protocol === IP_PROTO.TCP ? this.settings.tcpIdleTimeoutMs : this.settings.otherIdleTimeoutMs;
      const portIndex = (hash >>> 16) % this.sourcePorts.length;
      flow = new EmulatorFlow(
        hash,
        proto,
        Uint32Array.from(pkt.src),
        sp,
        Uint32Array.from(pkt.dst),
        dp,
        target,
        cookie,
        ep.id,
        header,
        portIndex,
        timeout,
        now,
        now,
      );
      flow.next = this.buckets.get(hash) ?? null;
      this.buckets.set(hash, flow);
      this.byCookie.set(cookie, flow);
      target.flows++;
      c.flowsCreated++;
    } else if (!flow.target.health.routable && this.settings.onUnhealthy === 'rebalance') {
      const moved = this.pickTarget(hash, flow.target);
      if (moved !== undefined) {
        flow.target.flows--;
        flow.target = moved;
        moved.flows++;
        c.flowsRebalanced++;
      }
    }
    flow.lastSeenMs = now;
    // A 2-tuple/3-tuple flow carrying TCP keeps the TCP timeout.
    if (pkt.protocol === IP_PROTO.TCP && flow.idleTimeoutMs < this.settings.tcpIdleTimeoutMs) {
      flow.idleTimeoutMs = this.settings.tcpIdleTimeoutMs;
    }
    flow.packets++;
    flow.bytes += len;
    const start = off - this.headerLength;
    flow.header.copy(buf, start);
    const portIndex = this.portIndexFor(flow, sameAddr(flow.a, pkt.src) && flow.aPort === sp ? 0 : 1);
    const target = flow.target;
    if (this.io.send(target, portIndex, buf, start, this.headerLength + len)) {
      target.encapsulatedPackets++;
      target.encapsulatedBytes += this.headerLength + len;
    } else {
      c.sendDrops++;
    }
  }

  /** Source port index for a direction (0 = from the initiator) of a flow. */
  private portIndexFor(flow: EmulatorFlow, direction: number): number {
    if (this.settings.sourcePortMode === 'per-direction' && direction === 1) {
      return (flow.portIndex + 1) % this.sourcePorts.length;
    }
    return flow.portIndex;
  }

  /**
   * One IPv4 datagram (header included) captured on the emulator's address. Returns RETURN.ACCEPTED (the inner
   * packet was delivered to the TUN), RETURN.IGNORED (not GENEVE addressed to us), or 1 + the index of the
   * reject reason in RETURN_REJECT_REASONS.
   */
  onReturnDatagram(buf: Buffer, off: number, len: number): number {
    const c = this.counters;
    // Outer IPv4 and UDP headers: lengths first, then fields.
    if (len < IPV4_MIN_HEADER || buf.readUInt8(off) >>> 4 !== 4) return this.reject('malformed-outer');
    const ihl = (buf.readUInt8(off) & IPV4_IHL_MASK) * 4;
    const total = buf.readUInt16BE(off + IPV4_TOTAL_LENGTH_OFF);
    if (ihl < IPV4_MIN_HEADER || total > len || total < ihl + UDP_HEADER) return this.reject('malformed-outer');
    if (buf.readUInt8(off + IPV4_PROTOCOL_OFF) !== IP_PROTO.UDP) return this.ignore();
    const udp = off + ihl;
    const srcAddr = buf.readUInt32BE(off + IPV4_SRC_OFF);
    const dstAddr = buf.readUInt32BE(off + IPV4_DST_OFF);
    const srcPort = buf.readUInt16BE(udp);
    const dstPort = buf.readUInt16BE(udp + 2);
    if (dstAddr !== this.emulatorAddrU32 || dstPort !== this.settings.genevePort) return this.ignore();
    let target: EmulatorTarget | undefined;
    for (const t of this.targets) if (t.addrU32 === srcAddr) target = t;
    if (target === undefined) return this.reject('unknown-source');
    const udpLen = buf.readUInt16BE(udp + UDP_LENGTH_OFF);
    if (udpLen !== total - ihl) return this.reject('malformed-outer');
    if (total > GWLB_MAX_DATAGRAM_BYTES) return this.reject('too-large');
    // RFC 768: a zero checksum means none was computed; otherwise the sum over pseudo-header + datagram is 0xFFFF.
    if (buf.readUInt16BE(udp + UDP_CHECKSUM_OFF) !== 0) {
      const sum = sum16(buf, udp, udpLen, pseudoSumV4(srcAddr, dstAddr, IP_PROTO.UDP, udpLen));
      if (fold(sum) !== 0) return this.reject('bad-udp-checksum');
    }
    const g = udp + UDP_HEADER;
    const gLen = udpLen - UDP_HEADER;
    const gh = this.gh;
    if (decodeGeneve(buf, g, gLen, gh) !== 0) return this.reject('bad-geneve');
    if (!gh.hasFlowCookie) return this.reject('missing-cookie');
    const flow = this.byCookie.get(gh.flowCookie);
    if (flow === undefined) return this.reject('unknown-cookie');
    if (gh.headerLength !== flow.header.length || buf.compare(flow.header, 0, flow.header.length, g, g + gh.headerLength) !== 0) {
      return this.reject('header-mismatch');
    }
    if (target !== flow.target) return this.reject('wrong-target');
    const innerOff = g + gh.headerLength;
    const innerLen = gLen - gh.headerLength;
    const pkt = this.retPkt;
    if (decodeInner(buf, innerOff, innerLen, gh.protocolType, pkt) !== 0 && !pkt.isFragment) return this.reject('inner-mismatch');
    const [proto, sp, dp] = this.keyOf(pkt);
    let direction: number;
    if (proto === flow.protocol && sameAddr(pkt.src, flow.a) && sameAddr(pkt.dst, flow.b) && sp === flow.aPort && dp === flow.bPort) {
      direction = 0;
    } else if (proto === flow.protocol && sameAddr(pkt.src, flow.b) && sameAddr(pkt.dst, flow.a) && sp === flow.bPort && dp === flow.aPort) {
      direction = 1;
    } else if (this.isIcmpError(pkt)) {
      // An ICMP error the appliance originated for this flow (docs/architecture.md §2) rides the flow's header.
      direction = sameAddr(pkt.dst, flow.a) ? 1 : 0;
    } else {
      return this.reject('inner-mismatch');
    }
    if (srcPort !== this.sourcePorts[this.portIndexFor(flow, direction)]) return this.reject('wrong-source-port');
    flow.returns++;
    if (!this.io.deliver(buf, innerOff, innerLen)) {
      c.deliverDrops++;
    }
    target.returnsAccepted++;
    c.returnsAccepted++;
    return RETURN.ACCEPTED;
  }

  private isIcmpError(pkt: InnerPacket): boolean {
    // RFC 792: types 3 (unreachable), 11 (time exceeded), 12 (parameter problem); RFC 4443: ICMPv6 types 1-4.
    if (pkt.protocol === IP_PROTO.ICMP) return pkt.icmpType === 3 || pkt.icmpType === 11 || pkt.icmpType === 12;
    if (pkt.protocol === IP_PROTO.ICMPV6) return pkt.icmpType >= 1 && pkt.icmpType <= 4;
    return false;
  }

  private reject(reason: ReturnRejectReason): number {
    this.counters.returnsRejected[reason]++;
    return RETURN_REJECT_REASONS.indexOf(reason) + 1;
  }

  private ignore(): number {
    this.counters.returnsIgnored++;
    return RETURN.IGNORED;
  }

  /** A snapshot of the flow table, oldest first, at most `limit` entries. */
  flows(limit = 1000): FlowInfo[] {
    const now = this.now();
    const out: FlowInfo[] = [];
    for (const f of this.byCookie.values()) {
      if (out.length >= limit) break;
      out.push({
        protocol: f.protocol,
        a: formatIp(f.a),
        aPort: f.aPort,
        b: formatIp(f.b),
        bPort: f.bPort,
        target: f.target.spec.name,
        cookie: f.cookie,
        endpointId: f.endpointId,
        packets: f.packets,
        returns: f.returns,
        idleMs: now - f.lastSeenMs,
        ageMs: now - f.createdMs,
      });
    }
    return out;
  }

  /** Counters and target states as plain JSON. */
  status(): EmulatorStatus {
    return {
      counters: structuredClone(this.counters),
      returnsRejectedTotal: Object.values(this.counters.returnsRejected).reduce((a, b) => a + b, 0),
      flows: this.byCookie.size,
      sourcePorts: [...this.sourcePorts],
      settings: {
        stickiness: this.settings.stickiness,
        tcpIdleTimeoutMs: this.settings.tcpIdleTimeoutMs,
        otherIdleTimeoutMs: this.settings.otherIdleTimeoutMs,
        allUnhealthy: this.settings.allUnhealthy,
        onUnhealthy: this.settings.onUnhealthy,
        sourcePortMode: this.settings.sourcePortMode,
        extraOptionsHex: this.settings.extraOptionsHex,
        health: { ...this.settings.health },
      },
      targets: this.targets.map((t) => ({
        name: t.spec.name,
        addr: t.spec.addr,
        port: t.spec.port,
        healthPort: t.spec.healthPort,
        state: t.health.state,
        consecutiveOk: t.health.consecutiveOk,
        consecutiveFail: t.health.consecutiveFail,
        probes: t.health.probes,
        lastError: t.health.lastError,
        flows: t.flows,
        encapsulatedPackets: t.encapsulatedPackets,
        encapsulatedBytes: t.encapsulatedBytes,
        returnsAccepted: t.returnsAccepted,
      })),
    };
  }
}

export interface TargetStatus {
  name: string;
  addr: string;
  port: number;
  healthPort: number;
  state: string;
  consecutiveOk: number;
  consecutiveFail: number;
  probes: number;
  lastError: string;
  flows: number;
  encapsulatedPackets: number;
  encapsulatedBytes: number;
  returnsAccepted: number;
}

export interface EmulatorStatus {
  counters: EmulatorCounters;
  returnsRejectedTotal: number;
  flows: number;
  sourcePorts: number[];
  settings: Record<string, unknown>;
  targets: TargetStatus[];
}
