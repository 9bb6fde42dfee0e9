/**
 * Admin HTTP port: GET /healthz for the GWLB target group health check, GET /stats (JSON) and GET /metrics
 * (Prometheus text). Answers from state the data plane already maintains (no work per probe), so several
 * probes per second cost nothing; every response carries Content-Length and the request body is drained, so
 * connections close with FIN, never RST.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
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
  return { healthy: reasons.length === 0, reasons };
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

export function startAdminServer(host: string, port: number, h: HealthSources): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume(); // drain any body so close is a FIN, not an RST with unread data
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') {
      const r = evaluateHealth(h);
      return send(res, r.healthy ? 200 : 503, 'application/json', JSON.stringify({ status: r.healthy ? 'ok' : 'unhealthy', reasons: r.reasons }) + '\n');
    }
    if (path === '/stats') {
      const stats = { ...h.supervisor.stats(), ...(h.extraStats?.() ?? {}), selfTest: { sent: h.selfTest.sent, received: h.selfTest.received, mismatched: h.selfTest.mismatched } };
      return send(res, 200, 'application/json', JSON.stringify(stats, null, 2) + '\n');
    }
    if (path === '/metrics') return send(res, 200, 'text/plain; version=0.0.4', prometheus(h.supervisor.stats()));
    send(res, 404, 'text/plain', 'not found: try /healthz, /stats or /metrics\n');
  });
  // GWLB probes several times per interval; keep-alive is fine but must not hold sockets forever.
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxConnections = 256;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
