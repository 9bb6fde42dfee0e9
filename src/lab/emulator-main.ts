/**
 * The GWLB emulator process. Runs inside the lab's gateway namespace:
 *
 *   ip netns exec gwi-<id>-gw node dist/lab/emulator-main.js --config /run/gwlb-inspector/<id>/emulator.json
 *
 * I/O around src/lab/emulator.ts (the logic):
 * - TUN device (created and routed by src/lab/netns.ts): every packet the gateway forwards between client and
 *   server is read here, encapsulated and sent to an appliance; returned inner packets are written back into it
 *   and the kernel routes them on.
 * - N UDP sockets on emulatorAddr with ephemeral ports: the outer source ports GWLB sends from.
 * - A raw IPPROTO_UDP socket: sees each returned datagram with its IPv4 and UDP headers, so the checks cover
 *   addresses, ports and the UDP checksum (a UDP socket would hide them, and the kernel may skip checksum
 *   verification on loopback). A UDP socket bound to emulatorAddr:6081 with a tiny buffer exists only so the
 *   kernel does not answer returns with ICMP port unreachable; it is never read (so the gateway's
 *   /proc/net/snmp counts every return as a UDP RcvbufError: expected).
 * - Health probes (HTTP GET or TCP connect) to each target's health port, per src/lab/health.ts.
 * - A control HTTP server on a unix socket (reachable from any network namespace): GET /status, GET /flows,
 *   POST /targets, DELETE /targets/NAME, POST /sweep, GET /fetch?url=http://127.x.y.z:port/path (an HTTP GET
 *   made from inside the gateway namespace, for appliance admin endpoints).
 *
 * Signals: SIGTERM/SIGINT stop it (the final status is printed as one JSON line on stdout); SIGUSR2 prints the
 * status line without stopping. The first stdout line is {"event":"ready",...} once everything is open.
 */
import { Buffer } from 'node:buffer';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNative, type PollHandle } from '../dataplane/native.js';
import { ipv4ToU32 } from '../packet/address.js';
import { ENCAP_HEADROOM, GwlbEmulator, type EmulatorSettings, type EmulatorTarget, type TargetSpec } from './emulator.js';

export interface EmulatorProcessConfig {
  /** TUN device name inside the namespace. */
  tun: string;
  /** Unix socket path of the control server. */
  control: string;
  /** How many outer source ports (sockets) to send from. */
  sourcePortCount: number;
  settings: Partial<EmulatorSettings>;
  targets: TargetSpec[];
}

/** Datagrams at most 8568 bytes; the slot leaves room for anything the kernel hands us, up to 64 KiB. */
const RECV_SLOT_BYTES = 65_536;
const SOCKET_BUFFER_BYTES = 8 * 1024 * 1024; // 8 MiB
const SINK_BUFFER_BYTES = 4_096;
/** Packets handled per readiness callback before yielding to the event loop. */
const MAX_PACKETS_PER_WAKEUP = 512;
const SWEEP_INTERVAL_MS = 1_000;
const HEALTH_TICK_MS = 20;

function out(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 65_536) req.destroy(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** One HTTP GET with an overall deadline; resolves to the status code, or rejects. */
function httpGet(host: string, port: number, path: string, timeoutMs: number, maxBody = 0): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= maxBody) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function runEmulator(cfg: EmulatorProcessConfig): Promise<void> {
  const native = loadNative();
  const tunFd = native.openTun(cfg.tun);
  const rawFd = native.openRawUdpRecv(SOCKET_BUFFER_BYTES);
  const settingsAddr = cfg.settings.emulatorAddr ?? '127.0.0.2';
  const genevePort = cfg.settings.genevePort ?? 6081;
  const addrU32 = ipv4ToU32(settingsAddr);
  const sinkFd = native.openUdp(addrU32, genevePort, SINK_BUFFER_BYTES);
  const sendFds: number[] = [];
  const ports: number[] = [];
  for (let i = 0; i < Math.max(1, cfg.sourcePortCount); i++) {
    const fd = native.openUdp(addrU32, 0, SOCKET_BUFFER_BYTES);
    sendFds.push(fd);
    ports.push(native.localPort(fd));
  }
  let sendErrors = 0;
  let tunWriteErrors = 0;
  const emulator = new GwlbEmulator(
    cfg.settings,
    {
      send(target: EmulatorTarget, portIndex: number, buf: Buffer, off: number, len: number): boolean {
        try {
          return native.sendOne(sendFds[portIndex]!, buf, off, len, target.addrU32, target.spec.port) > 0;
        } catch {
          sendErrors++;
          return false;
        }
      },
      deliver(buf: Buffer, off: number, len: number): boolean {
        try {
          return native.writeFd(tunFd, buf, off, len) > 0;
        } catch {
          tunWriteErrors++;
          return false;
        }
      },
    },
    ports,
  );
  for (const t of cfg.targets) emulator.addTarget(t);

  const tunBuf = Buffer.alloc(ENCAP_HEADROOM + RECV_SLOT_BYTES);
  const rawBuf = Buffer.alloc(RECV_SLOT_BYTES);
  const polls: PollHandle[] = [];
  polls.push(
    native.poll(tunFd, () => {
      for (let i = 0; i < MAX_PACKETS_PER_WAKEUP; i++) {
        const n = native.readFd(tunFd, tunBuf, ENCAP_HEADROOM, RECV_SLOT_BYTES);
        if (n <= 0) break;
        emulator.onTunPacket(tunBuf, ENCAP_HEADROOM, n);
      }
    }),
  );
  polls.push(
    native.poll(rawFd, () => {
      for (let i = 0; i < MAX_PACKETS_PER_WAKEUP; i++) {
        const n = native.readFd(rawFd, rawBuf, 0, RECV_SLOT_BYTES);
        if (n <= 0) break;
        emulator.onReturnDatagram(rawBuf, 0, n);
      }
    }),
  );

  const health = emulator.settings.health;
  const healthTimer = setInterval(() => {
    const now = Date.now();
    for (const t of emulator.targets) {
      if (!t.health.due(now)) continue;
      t.health.begin(now);
      const probe =
        health.protocol === 'http'
          ? httpGet(t.spec.addr, t.spec.healthPort, health.path, health.timeoutMs).then((r) => {
              if (r.status < health.matcherLow || r.status > health.matcherHigh) throw new Error(`HTTP ${r.status}`);
            })
          : tcpProbe(t.spec.addr, t.spec.healthPort, health.timeoutMs);
      probe.then(
        () => t.health.record(true, Date.now()),
        (err: unknown) => t.health.record(false, Date.now(), err instanceof Error ? err.message : String(err)),
      );
    }
  }, HEALTH_TICK_MS);
  const sweepTimer = setInterval(() => emulator.sweep(), SWEEP_INTERVAL_MS);

  const status = (): unknown => ({ ...emulator.status(), pid: process.pid, sendErrors, tunWriteErrors });

  rmSync(cfg.control, { force: true });
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://emulator');
      try {
        if (req.method === 'GET' && url.pathname === '/status') return json(res, 200, status());
        if (req.method === 'GET' && url.pathname === '/flows') {
          return json(res, 200, emulator.flows(Number(url.searchParams.get('limit') ?? 1000)));
        }
        if (req.method === 'POST' && url.pathname === '/targets') {
          const spec = JSON.parse(await readBody(req)) as TargetSpec;
          emulator.addTarget(spec);
          return json(res, 201, { ok: true });
        }
        if (req.method === 'DELETE' && url.pathname.startsWith('/targets/')) {
          const removed = emulator.removeTarget(decodeURIComponent(url.pathname.slice('/targets/'.length)));
          return json(res, removed ? 200 : 404, { ok: removed });
        }
        if (req.method === 'POST' && url.pathname === '/sweep') return json(res, 200, { expired: emulator.sweep() });
        if (req.method === 'GET' && url.pathname === '/fetch') {
          const target = new URL(url.searchParams.get('url') ?? '');
          // Only loopback addresses inside the gateway namespace: this is a window onto the appliances, not a proxy.
          if (target.protocol !== 'http:' || !target.hostname.startsWith('127.')) {
            return json(res, 400, { error: 'only http://127.x.y.z URLs' });
          }
          const timeoutMs = Number(url.searchParams.get('timeoutMs') ?? 2_000);
          try {
            const r = await httpGet(target.hostname, Number(target.port || 80), target.pathname + target.search, timeoutMs, 4 * 1024 * 1024);
            return json(res, 200, r);
          } catch (err) {
            return json(res, 200, { status: 0, body: '', error: err instanceof Error ? err.message : String(err) });
          }
        }
        return json(res, 404, { error: 'not found' });
      } catch (err) {
        return json(res, 400, { error: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.control, resolve);
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    clearInterval(healthTimer);
    clearInterval(sweepTimer);
    for (const p of polls) p.close();
    server.close();
    rmSync(cfg.control, { force: true });
    out({ event: 'exit', signal, status: status() });
    for (const fd of [tunFd, rawFd, sinkFd, ...sendFds]) native.close(fd);
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGUSR2', () => out({ event: 'status', status: status() }));
  out({ event: 'ready', pid: process.pid, tun: cfg.tun, control: cfg.control, sourcePorts: ports });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (values.config === undefined) {
    process.stderr.write('usage: emulator-main.js --config FILE.json\n');
    process.exit(2);
  }
  const cfg = JSON.parse(readFileSync(values.config, 'utf8')) as EmulatorProcessConfig;
  runEmulator(cfg).catch((err: unknown) => {
    process.stderr.write(`emulator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
