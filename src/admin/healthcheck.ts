/**
 * The container's HEALTHCHECK (docker/Dockerfile): `node dist/admin/healthcheck.js [ADDR:PORT]`. Asks the health
 * listener for /healthz (the address from the argument, else GWLB_INSPECTOR_ADMIN_LISTEN, else the default
 * 0.0.0.0:8080; a wildcard address is reached on loopback) and exits 0 when the appliance answers 200, or 503 while
 * draining, 1 otherwise. Draining is healthy for the container on purpose: after POST /drain the process must keep
 * running so established flows finish; an orchestrator that replaced "unhealthy" containers would cut them.
 * The slim image has no curl: this uses Node's fetch, bounded by HEALTHCHECK_TIMEOUT_MS.
 */

/** Whole request budget, ms; below Docker's HEALTHCHECK --timeout (3 s in docker/Dockerfile). */
export const HEALTHCHECK_TIMEOUT_MS = 2000;

const DEFAULT_ADMIN_LISTEN = '0.0.0.0:8080';

/** The URL of /healthz for an ADDR:PORT as the appliance's --admin-listen takes it. */
export function healthzUrl(listen: string): string {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at);
  const port = listen.slice(at + 1);
  return `http://${host === '0.0.0.0' || host === '' ? '127.0.0.1' : host}:${port}/healthz`;
}

export interface CheckResult {
  ok: boolean;
  line: string;
}

export async function check(listen: string, timeoutMs = HEALTHCHECK_TIMEOUT_MS): Promise<CheckResult> {
  const url = healthzUrl(listen);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let status = '';
    try {
      status = String((JSON.parse(text) as { status?: unknown }).status ?? '');
    } catch {
      status = '';
    }
    if (res.status === 200) return { ok: true, line: `healthy (${url})` };
    if (res.status === 503 && status === 'draining') return { ok: true, line: `draining: no new flows, existing flows continue (${url})` };
    return { ok: false, line: `unhealthy: HTTP ${res.status} ${text.replace(/\s+/g, ' ').trim().slice(0, 300)} (${url})` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { ok: false, line: `no answer from ${url}: ${e.cause?.code ?? e.cause?.message ?? e.message}` };
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const listen = process.argv[2] ?? process.env['GWLB_INSPECTOR_ADMIN_LISTEN'] ?? DEFAULT_ADMIN_LISTEN;
  const r = await check(listen);
  process.stdout.write(`${r.line}\n`);
  process.exitCode = r.ok ? 0 : 1;
}
