/**
 * Starts the real appliance (dist/cli/main.js, built by `npm test`) as a child process and waits for its
 * "started" log line. Everything it starts it stops, by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface Appliance {
  proc: ChildProcess;
  pid: number;
  /** Health listener (/healthz). */
  adminUrl: string;
  /** Stats listener (/stats, /metrics). */
  statsUrl: string;
  /** Operational log lines (JSON) seen so far on stderr. */
  logs: Record<string, unknown>[];
  stdout: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Unless the caller chooses a stats listener, it gets an ephemeral loopback port: the default 127.0.0.1:9090 would
 * collide between test files running in parallel.
 */
export async function startAppliance(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Appliance> {
  const statsArgs = args.includes('--stats-listen') || env['GWLB_INSPECTOR_STATS_LISTEN'] !== undefined ? [] : ['--stats-listen', '127.0.0.1:0'];
  const proc = spawn(process.execPath, [CLI, 'run', ...statsArgs, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const stdout: string[] = [];
  let errBuf = '';
  let outBuf = '';
  let startedResolve: (addrs: { admin: string; stats: string }) => void = () => undefined;
  const started = new Promise<{ admin: string; stats: string }>((resolve) => (startedResolve = resolve));
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    errBuf += chunk;
    let nl;
    while ((nl = errBuf.indexOf('\n')) >= 0) {
      const line = errBuf.slice(0, nl);
      errBuf = errBuf.slice(nl + 1);
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        logs.push(rec);
        if (rec['msg'] === 'started') startedResolve({ admin: String(rec['admin']), stats: String(rec['stats']) });
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    outBuf += chunk;
    let nl;
    while ((nl = outBuf.indexOf('\n')) >= 0) {
      stdout.push(outBuf.slice(0, nl));
      outBuf = outBuf.slice(nl + 1);
    }
  });
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const first = await Promise.race([started, exited.then(() => undefined)]);
  clearTimeout(timer);
  if (first === undefined) throw new Error(`appliance exited before starting: ${JSON.stringify(logs)}`);
  return {
    proc,
    pid: proc.pid as number,
    adminUrl: `http://${first.admin}`,
    statsUrl: `http://${first.stats}`,
    logs,
    stdout,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      proc.kill(signal);
      const [code] = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}

/** A random port in 20000–59999 and a random 127.x.y.z address: parallel test files never share either. */
export function randomPort(): number {
  return 20000 + Math.floor(Math.random() * 40000);
}

export function randomLoopback(): string {
  return `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
}

export async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stderr lines, parsed as JSON where they are JSON ({ raw } otherwise). */
  logs: Record<string, unknown>[];
  /** True when it had to be killed after timeoutMs (it did not exit by itself). */
  killed: boolean;
}

/** Runs `gwlb-inspector run ARGS` expecting it to exit by itself (a start failure); kills it after timeoutMs. */
export async function runToExit(args: string[], timeoutMs = 15_000): Promise<Exited> {
  const proc = spawn(process.execPath, [CLI, 'run', ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    proc.kill('SIGKILL');
  }, timeoutMs);
  const [code, signal] = (await once(proc, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  const logs = err
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return { raw: l };
      }
    });
  return { code, signal, logs, killed };
}
