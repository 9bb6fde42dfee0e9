/**
 * Main-thread side of the data plane: opens the socket group (so the reuseport index of socket i is i), starts
 * one worker per socket, restarts a worker that dies (same socket, so its flows' packets keep a reader),
 * pushes policy swaps, and aggregates counters for the admin port.
 */
import type { StageHealth } from '../pipeline/content.js';
import { loadDlpHashKey } from '../dlp/hash-key.js';
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { loadNative, newSteeringKey, type NativeNet } from './native.js';
import { COUNTER, createCounters, dropReasons, namedCounters } from './counters.js';
import type { WorkerInit, WorkerMessage, WorkerReport } from './worker-main.js';
import type { ChainFactoryInput } from '../chain.js';
import type { Settings } from '../config/settings.js';
import { ipv4ToU32 } from '../packet/address.js';
import type { Logger } from '../util/logger.js';
import { PROBE_NONCE_BYTES } from './engine.js';
import { ownAddresses } from './source-guard.js';

/** A worker that dies is restarted after this delay, doubling per consecutive death up to the max (ms). */
const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 5000;

interface WorkerSlot {
  index: number;
  fd: number;
  rawFd: number;
  counters: Float64Array;
  worker: Worker | undefined;
  ready: boolean;
  restarts: number;
  stopping: boolean;
  /** Latest per-stage counters the worker posted (about once a second). */
  stageStats: Record<string, Record<string, number>>;
  /** Health the worker's content stages last reported (stage-stats). */
  stageHealth: Record<string, StageHealth>;
}

export class Supervisor {
  readonly settings: Settings;
  readonly probeNonce: Buffer = randomBytes(PROBE_NONCE_BYTES);
  private readonly dlpHashKey: Buffer;
  /** Key of the kernel's worker steering, drawn per start (native/gwlb_net.c); the self-test needs it too. */
  readonly steeringKey: Uint32Array = newSteeringKey();
  /** This network namespace's IPv4 addresses at start (loop guard); the address a datagram came to counts too. */
  readonly ownAddrs: Uint32Array;
  private readonly native: NativeNet;
  private readonly slots: WorkerSlot[] = [];
  private readonly log: Logger;
  private policy: ChainFactoryInput;
  private stopping = false;
  /** Called with each verdict-log event from any worker. */
  onVerdictLog: ((event: unknown) => void) | undefined;

  constructor(settings: Settings, policy: ChainFactoryInput, log: Logger) {
    this.settings = settings;
    this.policy = policy;
    this.log = log;
    this.native = loadNative();
    this.ownAddrs = ownAddresses(settings.listen);
    // One key for every worker (DLP keyed hashes must compare across workers); a bad key file stops the start.
    this.dlpHashKey = loadDlpHashKey(settings.dlpHashKeyFile);
  }

  get workerCount(): number {
    return this.slots.length;
  }

  /** Opens sockets, starts workers, resolves when every worker reported ready. */
  async start(): Promise<void> {
    const s = this.settings;
    const fds = this.native.openUdpGroup(ipv4ToU32(s.listen), s.port, s.workers, s.socketBufferBytes, this.steeringKey);
    // Every fd goes into a slot before the next call that can throw, so stop() closes all of them.
    for (let i = 0; i < fds.length; i++) {
      this.slots.push({ index: i, fd: fds[i]!, rawFd: -1, counters: createCounters(), worker: undefined, ready: false, restarts: 0, stopping: false, stageStats: {}, stageHealth: {} });
    }
    if (s.returnMode === 'raw') for (const slot of this.slots) slot.rawFd = this.native.openRawSend(s.socketBufferBytes);
    await Promise.all(this.slots.map((slot) => this.spawn(slot)));
  }

  private spawn(slot: WorkerSlot): Promise<void> {
    const init: WorkerInit = {
      index: slot.index,
      fd: slot.fd,
      rawFd: slot.rawFd,
      settings: this.settings,
      counters: slot.counters,
      probeNonce: this.probeNonce,
      ownAddrs: this.ownAddrs,
      policy: this.policy,
      incarnation: slot.restarts,
      dlpHashKey: this.dlpHashKey,
    };
    const worker = new Worker(new URL('./worker-main.js', import.meta.url), { workerData: init, name: `gwi-worker-${slot.index}` });
    slot.worker = worker;
    slot.ready = false;
    return new Promise((resolve, reject) => {
      let settled = false;
      worker.on('message', (msg: WorkerReport) => {
        if (msg.type === 'ready') {
          slot.ready = true;
          if (!settled) {
            settled = true;
            resolve();
          }
        } else if (msg.type === 'fault') {
          this.log.error('worker_fault', { worker: msg.index, message: msg.message, stack: msg.stack });
        } else if (msg.type === 'stage-stats') {
          slot.stageStats = msg.stages;
          slot.stageHealth = msg.health;
        } else if (msg.type === 'log') {
          this.onVerdictLog?.(msg.event);
        } else if (msg.type === 'policy-applied') {
          this.log.debug('policy_applied', { worker: msg.index, generation: msg.generation });
        }
      });
      worker.on('error', (err) => {
        this.log.error('worker_error', { worker: slot.index, message: err.message, stack: err.stack });
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      worker.on('exit', (code) => {
        slot.ready = false;
        slot.worker = undefined;
        if (this.stopping || slot.stopping) return;
        slot.restarts++;
        const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.min(10, slot.restarts - 1));
        this.log.error('worker_exit', { worker: slot.index, code, restartInMs: delay, restarts: slot.restarts });
        setTimeout(() => {
          if (!this.stopping) this.spawn(slot).catch(() => undefined);
        }, delay).unref();
      });
    });
  }

  /** Hands a newly validated policy to every worker (each compiles and swaps between batches). */
  applyPolicy(policy: ChainFactoryInput): void {
    this.policy = policy;
    for (const slot of this.slots) slot.worker?.postMessage({ type: 'policy', policy } satisfies WorkerMessage);
  }

  /** Per-worker liveness: ready and heartbeat younger than maxAgeMs. */
  workerAlive(index: number, maxAgeMs: number): boolean {
    const slot = this.slots[index];
    if (slot === undefined || !slot.ready) return false;
    return Date.now() - slot.counters[COUNTER.HEARTBEAT_MS]! <= maxAgeMs;
  }

  stats(): Record<string, unknown> {
    const total: Record<string, number> = {};
    const drops: Record<string, number> = {};
    const stages: Record<string, Record<string, number>> = {};
    const workers = this.slots.map((slot) => {
      for (const [stage, counters] of Object.entries(slot.stageStats)) {
        const sum = (stages[stage] ??= {});
        for (const [k, v] of Object.entries(counters)) sum[k] = (sum[k] ?? 0) + v;
      }
      const named = namedCounters(slot.counters);
      const d = dropReasons(slot.counters);
      for (const [k, v] of Object.entries(named)) if (k !== 'heartbeat_ms' && k !== 'policy_generation') total[k] = (total[k] ?? 0) + v;
      for (const [k, v] of Object.entries(d)) drops[k] = (drops[k] ?? 0) + v;
      return { index: slot.index, alive: slot.ready, restarts: slot.restarts, ...named, drops: d, stages: slot.stageStats };
    });
    return { ...total, drops, stages, workers };
  }

  /** Stop receiving, let workers flush, exit. Resolves when all workers stopped or the grace ran out. */
  async stop(): Promise<void> {
    this.stopping = true;
    const grace = this.settings.shutdownGraceMs;
    await Promise.all(
      this.slots.map(async (slot) => {
        const w = slot.worker;
        if (w === undefined) return;
        slot.stopping = true;
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
        w.postMessage({ type: 'stop' } satisfies WorkerMessage);
        const timer = setTimeout(() => void w.terminate(), grace);
        await exited;
        clearTimeout(timer);
      }),
    );
    for (const slot of this.slots) {
      if (slot.fd >= 0) this.native.close(slot.fd);
      if (slot.rawFd >= 0) this.native.close(slot.rawFd);
      slot.fd = -1;
      slot.rawFd = -1;
    }
  }

  /** Each content stage's health, the worst any live worker reported (down > degraded > up). */
  stageHealth(): Record<string, StageHealth> {
    const rank = { up: 0, degraded: 1, down: 2 } as const;
    const out: Record<string, StageHealth> = {};
    for (const slot of this.slots) {
      if (!slot.ready) continue;
      for (const [name, h] of Object.entries(slot.stageHealth)) {
        const prev = out[name];
        if (prev === undefined || rank[h.state] > rank[prev.state]) out[name] = h;
      }
    }
    return out;
  }
}
