/**
 * The lab, programmatically: namespaces + GWLB emulator + appliances, for e2e tests and `gwlb-inspector lab`.
 *
 *   const lab = await startLab({ id: 'e2e1' });
 *   const a = await lab.startAppliance({ policy: 'policies/default.yaml' });
 *   const r = await lab.exec('client', ['curl', '-s', 'http://10.77.2.2:8000/']);
 *   console.log(await lab.counters());
 *   await lab.down();
 *
 * Everything the lab starts runs inside its own namespaces (`gwi-<id>-*`), detached, with output in
 * `<stateDir>/*.log`, and is stopped by PID in down(). A lab whose owner died is found again by `attachLab(id)`
 * (its state file) or removed wholesale by `cleanup('gwi-<id>-')` (every process inside its namespaces is killed).
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { EmulatorSettings, EmulatorStatus, FlowInfo, TargetSpec } from './emulator.js';
import type { EmulatorProcessConfig } from './emulator-main.js';
import {
  LAB_ADDR,
  LAB_IFACE,
  LabError,
  cleanup,
  createLabNetwork,
  killPids,
  labNamespaces,
  labPrerequisites,
  run,
  type LabHost,
  type LabNamespaces,
  type RunOptions,
  type RunResult,
  alive,
} from './netns.js';

/** Where lab state (config, logs, control socket) lives unless told otherwise. */
export const LAB_STATE_ROOT = '/run/gwlb-inspector';
/** Appliance N listens on 127.0.1.N (GENEVE on GENEVE_PORT, health on ADMIN_PORT, stats on STATS_PORT) inside the
 * gateway namespace. */
export const APPLIANCE_NET = '127.0.1.';
export const APPLIANCE_GENEVE_PORT = 6081;
export const APPLIANCE_ADMIN_PORT = 8080;
export const APPLIANCE_STATS_PORT = 9090;
/** How long an appliance may take to answer /healthz 200 after spawn (policy load in a worker thread included), ms. */
export const APPLIANCE_START_TIMEOUT_MS = 60_000;

export interface LabOptions {
  /** Lab id (letters, digits, _; ≤ 12). Default: random. */
  id?: string;
  /** Emulator settings (stickiness, timeouts, health checks, ...). */
  emulator?: Partial<EmulatorSettings>;
  /** Outer source ports the emulator sends from (default 4). */
  sourcePortCount?: number;
  /** Default `${LAB_STATE_ROOT}/<id>`. */
  stateDir?: string;
  /** Keep stateDir (logs) after down(). */
  keepState?: boolean;
}

export interface ApplianceOptions {
  policy: string;
  workers?: number;
  /** Target name in the emulator; default `appliance<N>`. */
  name?: string;
  /** More `run` flags. */
  extraArgs?: string[];
  /** Wait until the emulator's health checks say healthy (default true). */
  waitHealthy?: boolean;
  /** Replace the appliance command (argv after `ip netns exec NS`); ADDR/PORT/ADMIN placeholders are substituted. */
  command?: string[];
}

export interface ApplianceHandle {
  name: string;
  pid: number;
  addr: string;
  port: number;
  adminPort: number;
  /** http://addr:adminPort (health): reachable only inside the gateway namespace (use lab.fetchInGateway). */
  adminUrl: string;
  statsPort: number;
  /** http://addr:statsPort (/stats, /metrics): inside the gateway namespace only. */
  statsUrl: string;
  logFile: string;
  /** SIGTERM by PID (SIGKILL after the grace period) and wait for the exit. Stays registered with the emulator. */
  stop(): Promise<void>;
}

export interface LabProcess {
  pid: number;
  child: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or 128 + signal number style codes as null → -1). */
  exited: Promise<number>;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
}

interface LabState {
  id: string;
  namespaces: LabNamespaces;
  stateDir: string;
  controlSocket: string;
  emulatorPid: number;
  appliances: { name: string; pid: number; addr: string; port: number; adminPort: number; statsPort?: number; logFile: string }[];
}

/** The repository root (where package.json and dist/ are), from this module's location (src/lab or dist/lab). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new LabError('LAB_NO_ROOT', `cannot find package.json above ${fileURLToPath(import.meta.url)}`);
}


function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** An HTTP request over the emulator's unix control socket. */
export function controlRequest(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 5_000): Promise<{ status: number; json: unknown }> {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath,
        method,
        path,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolvePromise({ status: res.statusCode ?? 0, json: text.length > 0 ? JSON.parse(text) : null });
          } catch (err) {
            reject(new LabError('LAB_CONTROL', `bad control reply to ${method} ${path}: ${text.slice(0, 200)}`, { cause: err }));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', (err) => reject(new LabError('LAB_CONTROL', `emulator control ${method} ${path}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}

/**
 * The environment for lab daemons: ours minus what a test runner injects into Node children (loaders, coverage
 * collection), which would slow the emulator and the appliance down and change what they run.
 */
function daemonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k === 'NODE_OPTIONS' || k.startsWith('NODE_V8_COVERAGE') || k.startsWith('_TAPJS')) delete env[k];
  return env;
}

/** Starts `argv` inside namespace `ns`, detached, with stdout+stderr appended to `logFile`. */
function spawnDetached(ns: string, argv: readonly string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawnChild('ip', ['netns', 'exec', ns, ...argv], { detached: true, stdio: ['ignore', fd, fd], env: daemonEnv() });
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}

export class Lab {
  private readonly spawned = new Set<LabProcess>();
  private appliancesByName = new Map<string, ApplianceHandle>();
  private nextApplianceIndex = 1;
  private isDown = false;

  constructor(
    private readonly state: LabState,
    private readonly keepState: boolean,
  ) {
    for (const a of state.appliances) {
      this.appliancesByName.set(a.name, this.handleFor(a));
      this.nextApplianceIndex = Math.max(this.nextApplianceIndex, Number(a.addr.slice(APPLIANCE_NET.length)) + 1);
    }
  }

  get id(): string {
    return this.state.id;
  }
  get namespaces(): LabNamespaces {
    return this.state.namespaces;
  }
  get stateDir(): string {
    return this.state.stateDir;
  }
  get controlSocket(): string {
    return this.state.controlSocket;
  }
  get emulatorPid(): number {
    return this.state.emulatorPid;
  }
  get appliances(): ApplianceHandle[] {
    return [...this.appliancesByName.values()];
  }

  /** Namespace of a host. */
  ns(host: LabHost): string {
    return host === 'client' ? this.state.namespaces.client : host === 'server' ? this.state.namespaces.server : this.state.namespaces.gateway;
  }

  private saveState(): void {
    writeFileSync(join(this.state.stateDir, 'lab.json'), `${JSON.stringify(this.state, null, 2)}\n`);
  }

  private handleFor(a: LabState['appliances'][number]): ApplianceHandle {
    return {
      ...a,
      adminUrl: `http://${a.addr}:${a.adminPort}`,
      statsPort: a.statsPort ?? a.adminPort,
      statsUrl: `http://${a.addr}:${a.statsPort ?? a.adminPort}`,
      stop: async () => {
        await killPids([a.pid], 5_000);
      },
    };
  }

  /** Runs a command inside a namespace to completion (default timeout 30 s; exit 124 on timeout). */
  exec(host: LabHost, cmd: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.ns(host), ...cmd], opts);
  }

  /** Starts a long-running command inside a namespace; down() stops it if the test did not. */
  spawn(host: LabHost, cmd: readonly string[], opts: SpawnOptions = {}): LabProcess {
    const child = spawnChild('ip', ['netns', 'exec', this.ns(host), ...cmd], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? daemonEnv(),
    });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
    const exited = new Promise<number>((resolveExit) => {
      child.once('exit', (code) => resolveExit(code ?? -1));
      child.once('error', () => resolveExit(-1));
    });
    const pid = child.pid ?? -1;
    const proc: LabProcess = {
      pid,
      child,
      stdout: () => out,
      stderr: () => err,
      exited,
      stop: async () => {
        if (pid > 0 && child.exitCode === null && child.signalCode === null) await killPids([pid], 2_000);
        await exited;
        this.spawned.delete(proc);
      },
    };
    void exited.then(() => this.spawned.delete(proc));
    this.spawned.add(proc);
    return proc;
  }

  async emulatorStatus(): Promise<EmulatorStatus> {
    const r = await controlRequest(this.state.controlSocket, 'GET', '/status');
    return r.json as EmulatorStatus;
  }

  async flows(): Promise<FlowInfo[]> {
    const r = await controlRequest(this.state.controlSocket, 'GET', '/flows?limit=100000');
    return r.json as FlowInfo[];
  }

  /** Forgets idle flows now (the emulator also does it every second). */
  async sweep(): Promise<number> {
    const r = await controlRequest(this.state.controlSocket, 'POST', '/sweep');
    return (r.json as { expired: number }).expired;
  }

  /** HTTP GET made from inside the gateway namespace (appliance admin endpoints live there). status 0 = no answer. */
  async fetchInGateway(url: string, timeoutMs = 2_000): Promise<{ status: number; body: string; error?: string }> {
    const r = await controlRequest(
      this.state.controlSocket,
      'GET',
      `/fetch?url=${encodeURIComponent(url)}&timeoutMs=${timeoutMs}`,
      undefined,
      timeoutMs + 2_000,
    );
    return r.json as { status: number; body: string; error?: string };
  }

  /** Emulator status plus each appliance's /stats (parsed as JSON when it is). */
  async counters(): Promise<{ emulator: EmulatorStatus; appliances: Record<string, unknown> }> {
    const emulator = await this.emulatorStatus();
    const appliances: Record<string, unknown> = {};
    for (const a of this.appliancesByName.values()) {
      if (!alive(a.pid)) {
        appliances[a.name] = { stopped: true };
        continue;
      }
      const r = await this.fetchInGateway(`${a.statsUrl}/stats`);
      try {
        appliances[a.name] = JSON.parse(r.body) as unknown;
      } catch {
        appliances[a.name] = { status: r.status, body: r.body.slice(0, 4096) };
      }
    }
    return { emulator, appliances };
  }

  /** Waits until the emulator's health state of target `name` is `state`. */
  async waitForTarget(name: string, state: 'healthy' | 'unhealthy' | 'initial', timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const s = await this.emulatorStatus();
      const t = s.targets.find((x) => x.name === name);
      last = t === undefined ? 'not registered' : `${t.state} (${t.lastError || 'no error'})`;
      if (t?.state === state) return;
      await delay(25);
    }
    throw new LabError('LAB_TIMEOUT', `target ${name} did not become ${state} within ${timeoutMs} ms (last: ${last})`);
  }

  /** Registers a target with the emulator (startAppliance does this). */
  async addTarget(spec: TargetSpec): Promise<void> {
    const r = await controlRequest(this.state.controlSocket, 'POST', '/targets', spec);
    if (r.status !== 201) throw new LabError('LAB_CONTROL', `cannot add target ${spec.name}: ${JSON.stringify(r.json)}`);
  }

  async removeTarget(name: string): Promise<void> {
    await controlRequest(this.state.controlSocket, 'DELETE', `/targets/${encodeURIComponent(name)}`);
  }

  /**
   * Runs the appliance (`node dist/cli/main.js run ...`) inside the gateway namespace on 127.0.1.N:6081 with its
   * health endpoint on 127.0.1.N:8080 and stats on 127.0.1.N:9090, waits for GET /healthz = 200, registers it with the emulator and (by
   * default) waits until the emulator's health checks call it healthy.
   */
  async startAppliance(opts: ApplianceOptions): Promise<ApplianceHandle> {
    if (this.isDown) throw new LabError('LAB_DOWN', 'lab is down');
    const index = this.nextApplianceIndex++;
    const name = opts.name ?? `appliance${index}`;
    if (this.appliancesByName.has(name)) throw new LabError('LAB_EXISTS', `appliance ${name} exists`);
    const addr = `${APPLIANCE_NET}${index}`;
    const port = APPLIANCE_GENEVE_PORT;
    const adminPort = APPLIANCE_ADMIN_PORT;
    // A stand-in command serves /stats on its admin port.
    const statsPort = opts.command === undefined ? APPLIANCE_STATS_PORT : adminPort;
    const logFile = join(this.state.stateDir, `${name}.log`);
    const root = projectRoot();
    const main = join(root, 'dist', 'cli', 'main.js');
    const argv =
      opts.command?.map((a) => a.replaceAll('ADDR', addr).replaceAll('ADMIN', String(adminPort)).replaceAll('PORT', String(port))) ?? [
        process.execPath,
        main,
        'run',
        '--listen',
        addr,
        '--port',
        String(port),
        '--admin-listen',
        `${addr}:${adminPort}`,
        '--stats-listen',
        `${addr}:${statsPort}`,
        '--policy',
        resolve(opts.policy),
        '--workers',
        String(opts.workers ?? 1),
        ...(opts.extraArgs ?? []),
      ];
    if (opts.command === undefined && !existsSync(main)) {
      throw new LabError('LAB_NOT_BUILT', `${main} is missing: run \`npm run build\` first`);
    }
    const child = spawnDetached(this.state.namespaces.gateway, argv, logFile);
    const pid = child.pid ?? -1;
    if (pid <= 0) throw new LabError('LAB_SPAWN', `cannot start appliance ${name}`);
    const entry = { name, pid, addr, port, adminPort, statsPort, logFile };
    this.state.appliances.push(entry);
    this.saveState();
    const handle = this.handleFor(entry);
    this.appliancesByName.set(name, handle);
    // Ready = the admin endpoint answers 200 on /healthz.
    const deadline = Date.now() + APPLIANCE_START_TIMEOUT_MS;
    for (;;) {
      if (!alive(pid)) {
        throw new LabError('LAB_APPLIANCE_EXIT', `appliance ${name} exited during start; log ${logFile}:\n${tail(logFile)}`);
      }
      const r = await this.fetchInGateway(`${handle.adminUrl}/healthz`, 500);
      if (r.status === 200) break;
      if (Date.now() > deadline) {
        throw new LabError('LAB_TIMEOUT', `appliance ${name} not healthy within ${APPLIANCE_START_TIMEOUT_MS / 1000} s (last ${r.status} ${r.error ?? r.body}); log:\n${tail(logFile)}`);
      }
      await delay(50);
    }
    await this.addTarget({ name, addr, port, healthPort: adminPort });
    if (opts.waitHealthy !== false) await this.waitForTarget(name, 'healthy');
    return handle;
  }

  /** Stops everything by PID and removes the namespaces (and the state dir unless keepState). Idempotent. */
  async down(): Promise<{ emulatorFinal?: unknown }> {
    if (this.isDown) return {};
    this.isDown = true;
    for (const p of [...this.spawned]) await p.stop().catch(() => undefined);
    await killPids(
      this.state.appliances.map((a) => a.pid),
      5_000,
    );
    await killPids([this.state.emulatorPid], 5_000);
    let emulatorFinal: unknown;
    const emuLog = join(this.state.stateDir, 'emulator.log');
    for (const line of tail(emuLog, 20).split('\n')) {
      try {
        const o = JSON.parse(line) as { event?: string; status?: unknown };
        if (o.event === 'exit') emulatorFinal = o.status;
      } catch {
        // not a JSON line
      }
    }
    await cleanup(this.state.namespaces.prefix);
    if (!this.keepState) rmSync(this.state.stateDir, { recursive: true, force: true });
    return emulatorFinal === undefined ? {} : { emulatorFinal };
  }
}

/** A random lab id: 'l' + 7 base-36 characters. */
export function randomLabId(): string {
  return `l${BigInt(`0x${randomBytes(6).toString('hex')}`).toString(36).slice(0, 7)}`;
}

/**
 * Creates the namespaces and starts the emulator. Throws LabError('LAB_PREREQ') with every missing prerequisite
 * when the machine cannot host a lab.
 */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const problems = await labPrerequisites();
  const root = projectRoot();
  const emulatorMain = join(root, 'dist', 'lab', 'emulator-main.js');
  if (!existsSync(emulatorMain)) problems.push(`${emulatorMain} is missing: run \`npm run build\``);
  if (!existsSync(join(root, 'build', 'Release', 'gwlb_net.node'))) problems.push('the native addon is not built: run `npm run build`');
  if (problems.length > 0) throw new LabError('LAB_PREREQ', `the lab cannot run here:\n  - ${problems.join('\n  - ')}`);

  const id = opts.id ?? randomLabId();
  const stateDir = opts.stateDir ?? join(LAB_STATE_ROOT, id);
  const namespaces = await createLabNetwork(id);
  try {
    rmSync(stateDir, { recursive: true, force: true });
    mkdirSync(stateDir, { recursive: true });
    const controlSocket = join(stateDir, 'emulator.sock');
    const config: EmulatorProcessConfig = {
      tun: LAB_IFACE.tun,
      control: controlSocket,
      sourcePortCount: opts.sourcePortCount ?? 4,
      settings: {
        emulatorAddr: LAB_ADDR.emulator,
        endpoints: [{ id: 'vpce-01234567890abcdef', cidrs: ['10.77.1.0/24', 'fd77:1::/64'] }],
        ...opts.emulator,
      },
      targets: [],
    };
    const configFile = join(stateDir, 'emulator.json');
    writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
    const logFile = join(stateDir, 'emulator.log');
    const child = spawnDetached(namespaces.gateway, [process.execPath, emulatorMain, '--config', configFile], logFile);
    const pid = child.pid ?? -1;
    const state: LabState = { id, namespaces, stateDir, controlSocket, emulatorPid: pid, appliances: [] };
    const lab = new Lab(state, opts.keepState ?? false);
    writeFileSync(join(stateDir, 'lab.json'), `${JSON.stringify(state, null, 2)}\n`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!alive(pid)) throw new LabError('LAB_EMULATOR_EXIT', `emulator exited during start:\n${tail(logFile)}`);
      try {
        await lab.emulatorStatus();
        break;
      } catch {
        if (Date.now() > deadline) throw new LabError('LAB_TIMEOUT', `emulator not ready within 10 s:\n${tail(logFile)}`);
        await delay(20);
      }
    }
    return lab;
  } catch (err) {
    await cleanup(namespaces.prefix).catch(() => undefined);
    if (opts.keepState !== true) rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
}

/** Re-attaches to a running lab from its state file (for `lab status` / `lab down` from another process). */
export function attachLab(id: string, stateDir = join(LAB_STATE_ROOT, id)): Lab | undefined {
  const file = join(stateDir, 'lab.json');
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as LabState;
  return new Lab(state, false);
}

export { labNamespaces };
