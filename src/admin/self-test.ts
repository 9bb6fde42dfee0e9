/**
 * Data-path self-test behind /healthz (docs/architecture.md §2: a health endpoint that says 200 while the data path is
 * broken is the most common field failure).
 *
 * Every interval the prober sends, to the appliance's own GENEVE socket, one GWLB-shaped datagram per worker:
 * inner IPv4 UDP to PROBE_PORT carrying a per-process random nonce, with inner addresses chosen so the kernel's
 * steering program delivers it to that worker. The worker runs it through the real receive, GENEVE and inner
 * decode and send paths and returns it to the prober's port; the prober checks the bytes came back unchanged.
 * A worker is healthy while its last good round trip is younger than healthMaxAgeMs.
 */
import { loadNative, type NativeNet, type PollHandle } from '../dataplane/native.js';
import { encodeGeneveHeader } from '../geneve/codec.js';
import { buildIPv4Udp } from '../packet/build.js';
import { PROBE_PORT } from '../dataplane/engine.js';
import { ipv4ToU32, u32ToIpv4 } from '../packet/address.js';

const PROBE_SRC = '192.0.2.1'; // RFC 5737 TEST-NET-1: never a real host (further probe sources: the same /24)
const PROBE_SOURCE_PORT = 7;
const RECV_BYTES = 16 * 1024;

export class SelfTest {
  readonly lastOkMs: number[];
  sent = 0;
  received = 0;
  mismatched = 0;
  private readonly native: NativeNet;
  private readonly fd: number;
  private readonly targetAddr: number;
  private readonly targetPort: number;
  private readonly probes: Buffer[] = [];
  private readonly rx = Buffer.alloc(RECV_BYTES);
  private readonly info = new Float64Array(3);
  private poll: PollHandle | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(listen: string, port: number, workers: number, nonce: Buffer, steeringKey: Uint32Array) {
    this.native = loadNative();
    const addr = listen === '0.0.0.0' ? '127.0.0.1' : listen;
    this.targetAddr = ipv4ToU32(addr);
    this.targetPort = port;
    this.fd = this.native.openUdp(this.targetAddr, 0, 1 << 20);
    this.lastOkMs = new Array<number>(workers).fill(0);
    for (let w = 0; w < workers; w++) this.probes.push(this.buildProbe(w, workers, nonce, steeringKey));
  }

  /**
   * Picks inner addresses in 192.0.2.0/24 that the steering function (keyed per start) maps to worker `w`: the
   * source starts at PROBE_SRC, and further sources are tried only if no destination host fits, so with 64
   * workers and any key a pair is found (253 destinations miss one worker with probability ~2 %; 253² pairs never).
   */
  private buildProbe(w: number, workers: number, nonce: Buffer, steeringKey: Uint32Array): Buffer {
    const net = ipv4ToU32(PROBE_SRC) & 0xffffff00;
    const first = ipv4ToU32(PROBE_SRC) & 0xff;
    const srcWords = new Uint32Array([0, 0, 0xffff, 0]);
    const dstWords = new Uint32Array([0, 0, 0xffff, 0]);
    for (let i = 0; i < 253; i++) {
      const srcHost = 1 + ((first - 1 + i) % 253);
      srcWords[3] = (net | srcHost) >>> 0;
      for (let host = 2; host < 255; host++) {
        if (host === srcHost) continue;
        dstWords[3] = (net | host) >>> 0;
        if (workers === 1 || this.native.steeringIndex(srcWords, dstWords, workers, steeringKey) === w) {
          const inner = buildIPv4Udp({ src: u32ToIpv4(srcWords[3]!), dst: u32ToIpv4(dstWords[3]!), srcPort: PROBE_SOURCE_PORT, dstPort: PROBE_PORT, payload: nonce });
          const header = encodeGeneveHeader({ protocolType: 0x0800, endpointIdHi: 0, endpointIdLo: 0, attachmentIdHi: 0, attachmentIdLo: 0, flowCookie: w });
          return Buffer.concat([header, inner]);
        }
      }
    }
    throw new Error(`no probe address steers to worker ${w}`);
  }

  start(intervalMs: number): void {
    this.poll = this.native.poll(this.fd, () => this.onReadable());
    this.round();
    this.timer = setInterval(() => this.round(), intervalMs);
  }

  private round(): void {
    for (const p of this.probes) {
      try {
        this.native.sendOne(this.fd, p, 0, p.length, this.targetAddr, this.targetPort);
        this.sent++;
      } catch {
        // The data path is down if we cannot even send: lastOkMs ages out and /healthz says so.
      }
    }
  }

  private onReadable(): void {
    for (;;) {
      const n = this.native.recvOne(this.fd, this.rx, this.info);
      if (n === 0) return;
      this.received++;
      const w = this.probes.findIndex((p) => p.length === n && this.rx.compare(p, 0, n, 0, n) === 0);
      if (w < 0 || this.info[0] !== this.targetAddr) {
        this.mismatched++;
        continue;
      }
      this.lastOkMs[w] = Date.now();
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.poll?.close();
    this.poll = undefined;
    this.native.close(this.fd);
  }
}
