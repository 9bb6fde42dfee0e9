/**
 * The admin HTTP listeners, kept apart so what GWLB probes cannot be starved or read by anyone else:
 *   - health (--admin-listen, default 0.0.0.0:8080): GET /healthz only, for the GWLB target group health check;
 *   - stats (--stats-listen, default 127.0.0.1:9090): GET /stats (JSON) and GET /metrics (Prometheus text), with
 *     an optional bearer token (--stats-token / --stats-token-file), compared in constant time.
 * Both answer from state the data plane already maintains (no work per probe), so several probes per second cost
 * nothing; every response carries Content-Length and the request body is drained, so connections close with FIN,
 * never RST.
 *
 * Each listener is bounded (docs/configuration.md): header, request, keep-alive and inactivity timeouts, and a
 * connection cap enforced by our own accounting rather than server.maxConnections: Node refuses every connection
 * past maxConnections, so a few hundred idle sockets would lock GWLB's probes out. Here a connection arriving at
 * the cap closes the oldest idle one (no request in progress) instead, so a fresh probe, which sends its request at
 * once, always gets in; only when every connection is mid-request is the newcomer refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import type { Supervisor } from '../dataplane/supervisor.js';
import type { SelfTest } from './self-test.js';

/** A worker whose heartbeat is older than this is considered stuck (ms). */
export const WORKER_HEARTBEAT_MAX_AGE_MS = 2000;

export interface HealthSources {
  supervisor: Supervisor;
  selfTest: SelfTest;
  healthMaxAgeMs: number;
  policyLoaded: () => boolean;
  /** Extra state for /stats (policy reloads, log sinks...). */
  extraStats?: () => Record<string, unknown>;
}

export interface HealthReport {
  healthy: boolean;
  reasons: string[];
  /** Content stages working in a documented degraded mode (fail-open without their scanner). */
  degraded: string[];
}

export function evaluateHealth(h: HealthSources): HealthReport {
  const reasons: string[] = [];
  if (!h.policyLoaded()) reasons.push('no policy loaded');
  const now = Date.now();
  for (let w = 0; w < h.supervisor.workerCount; w++) {
    if (!h.supervisor.workerAlive(w, WORKER_HEARTBEAT_MAX_AGE_MS)) reasons.push(`worker ${w} not running`);
    const ok = h.selfTest.lastOkMs[w] ?? 0;
    if (now - ok > h.healthMaxAgeMs) reasons.push(`worker ${w} data-path self-test failed (last success ${ok === 0 ? 'never' : `${now - ok} ms ago`})`);
  }
  // A content stage that cannot do its job under a fail-closed policy is down (the appliance would block what it
  // must inspect); one that fails open is degraded: healthy, and said (docs/antivirus.md).
  const degraded: string[] = [];
  for (const [name, sh] of Object.entries(h.supervisor.stageHealth())) {
    if (sh.state === 'down') reasons.push(`stage ${name} down: ${sh.detail}`);
    else if (sh.state === 'degraded') degraded.push(`stage ${name} degraded: ${sh.detail}`);
  }
  return { healthy: reasons.length === 0, reasons, degraded };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function prometheus(stats: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(stats)) {
    if (typeof v === 'number') lines.push(`# TYPE gwlb_inspector_${k} ${k.startsWith('flows_active') || k.endsWith('_now') ? 'gauge' : 'counter'}`, `gwlb_inspector_${k} ${v}`);
  }
  const drops = stats['drops'];
  if (drops !== null && typeof drops === 'object') {
    lines.push('# TYPE gwlb_inspector_drops counter');
    for (const [reason, v] of Object.entries(drops as Record<string, number>)) lines.push(`gwlb_inspector_drops{reason="${reason}"} ${v}`);
  }
  const stages = stats['stages'];
  if (stages !== null && typeof stages === 'object') {
    for (const [stage, counters] of Object.entries(stages as Record<string, Record<string, number>>)) {
      for (const [k, v] of Object.entries(counters)) {
        const name = `gwlb_inspector_${stage}_${k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())}`;
        lines.push(`# TYPE ${name} counter`, `${name} ${v}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** Bounds of one admin listener (settings adminHeadersTimeoutMs ... adminMaxConnections). */
export interface HttpLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
}

export interface AdminCounters {
  /** Idle connections closed to make room for a new one at the cap. */
  evictedIdle: number;
  /** New connections refused because every connection had a request in progress. */
  refusedBusy: number;
  /** Requests refused for a missing or wrong bearer token (stats listener). */
  unauthorized: number;
}

export interface AdminServer {
  server: Server;
  counters: AdminCounters;
  /** Open connections right now. */
  connections(): number;
  close(): void;
}

/** What a connection is doing: `busy` while a request is being answered. */
interface ConnState {
  busy: boolean;
}

/**
 * An HTTP server with the timeouts and the connection accounting described at the top of this file. Connections
 * are kept in a Map in order of last activity (a finished request moves its connection to the end), so the first
 * idle entry is the one idle the longest.
 */
function boundedServer(host: string, port: number, limits: HttpLimits, counters: AdminCounters, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<AdminServer> {
  const conns = new Map<Socket, ConnState>();
  const server = createServer(
    // Node checks headers/request timeouts on this interval; a quarter of the shortest keeps the error small.
    { connectionsCheckingInterval: Math.max(25, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)) },
    (req, res) => {
      const st = conns.get(req.socket);
      if (st !== undefined) st.busy = true;
      res.once('close', () => {
        if (st === undefined || !conns.has(req.socket)) return;
        st.busy = false;
        conns.delete(req.socket);
        conns.set(req.socket, st);
      });
      handler(req, res);
    },
  );
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Socket inactivity, from accept: also covers connections that never send a byte (headersTimeout starts only
  // with the first byte of a request). Without a 'timeout' listener Node destroys the socket.
  server.timeout = limits.idleTimeoutMs;
  server.on('connection', (socket: Socket) => {
    if (conns.size >= limits.maxConnections) {
      let victim: Socket | undefined;
      for (const [s, st] of conns) {
        if (!st.busy) {
          victim = s;
          break;
        }
      }
      if (victim === undefined) {
        counters.refusedBusy++;
        socket.destroy();
        return;
      }
      counters.evictedIdle++;
      conns.delete(victim);
      victim.destroy();
    }
    conns.set(socket, { busy: false });
    socket.once('close', () => conns.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        server,
        counters,
        connections: () => conns.size,
        close: () => {
          server.close();
          server.closeAllConnections();
          for (const s of conns.keys()) s.destroy();
        },
      });
    });
  });
}

function newCounters(): AdminCounters {
  return { evictedIdle: 0, refusedBusy: 0, unauthorized: 0 };
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}

/** The health listener: GET /healthz and nothing else (no counters, addresses or policy details). */
export function startHealthServer(host: string, port: number, limits: HttpLimits, h: HealthSources): Promise<AdminServer> {
  return boundedServer(host, port, limits, newCounters(), (req, res) => {
    req.resume(); // drain any body so close is a FIN, not an RST with unread data
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    if (pathOf(req) === '/healthz') {
      const r = evaluateHealth(h);
      return send(res, r.healthy ? 200 : 503, 'application/json', JSON.stringify({ status: r.healthy ? (r.degraded.length > 0 ? 'degraded' : 'ok') : 'unhealthy', reasons: r.reasons, degraded: r.degraded }) + '\n');
    }
    send(res, 404, 'text/plain', 'not found: this listener serves /healthz only\n');
  });
}

/** SHA-256 of a token: both sides of the comparison get the same length, so timingSafeEqual applies. */
function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** True when the request carries `Authorization: Bearer <token>`; constant time in the token's content. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  const given = tokenDigest(m?.[1] ?? '');
  return timingSafeEqual(given, expected) && m !== null;
}

/**
 * The stats listener: GET /stats and /metrics. With a token, every request needs `Authorization: Bearer TOKEN`
 * (401 with WWW-Authenticate otherwise); an empty token means no authentication (loopback default).
 */
export function startStatsServer(host: string, port: number, limits: HttpLimits, token: string, h: HealthSources): Promise<AdminServer> {
  const counters = newCounters();
  const expected = token === '' ? null : tokenDigest(token);
  return boundedServer(host, port, limits, counters, (req, res) => {
    req.resume();
    if (expected !== null && !bearerMatches(req.headers.authorization, expected)) {
      counters.unauthorized++;
      res.setHeader('www-authenticate', 'Bearer realm="gwlb-inspector"');
      return send(res, 401, 'text/plain', 'unauthorized: send Authorization: Bearer <token>\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    const path = pathOf(req);
    if (path === '/stats') {
      const stats = { ...h.supervisor.stats(), ...(h.extraStats?.() ?? {}), selfTest: { sent: h.selfTest.sent, received: h.selfTest.received, mismatched: h.selfTest.mismatched } };
      return send(res, 200, 'application/json', JSON.stringify(stats, null, 2) + '\n');
    }
    if (path === '/metrics') return send(res, 200, 'text/plain; version=0.0.4', prometheus(h.supervisor.stats()));
    send(res, 404, 'text/plain', 'not found: try /stats or /metrics (health is on the health listener)\n');
  });
}

export class StatsTokenError extends Error {
  readonly code = 'GWI_ERR_STATS_TOKEN';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StatsTokenError';
  }
}

/** The stats bearer token: --stats-token as given, or the trimmed content of --stats-token-file; '' = none. */
export function resolveStatsToken(token: string, file: string): string {
  if (file === '') return token;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new StatsTokenError(`cannot read --stats-token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const t = text.trim();
  if (t.length < 16 || /\s/.test(t)) throw new StatsTokenError(`--stats-token-file ${file}: the token must be one word of at least 16 characters`);
  return t;
}

/** The limits settings as one listener's bounds. */
export function httpLimits(s: { adminHeadersTimeoutMs: number; adminRequestTimeoutMs: number; adminKeepAliveTimeoutMs: number; adminIdleTimeoutMs: number; adminMaxConnections: number }): HttpLimits {
  return {
    headersTimeoutMs: s.adminHeadersTimeoutMs,
    requestTimeoutMs: s.adminRequestTimeoutMs,
    keepAliveTimeoutMs: s.adminKeepAliveTimeoutMs,
    idleTimeoutMs: s.adminIdleTimeoutMs,
    maxConnections: s.adminMaxConnections,
  };
}
