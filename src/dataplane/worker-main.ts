/**
 * Worker thread entry: one per core, each owning one socket of the SO_REUSEPORT group (the kernel's BPF
 * steering sends both directions of a flow to the same socket, so the worker owns that flow's state alone)
 * and one raw socket for the return path.
 *
 * Loop: the socket becomes readable → recvmmsg batches until empty (bounded per wake-up so timers still run)
 * → engine → sendmmsg. The engine catches a throw per packet (the rest of the batch goes on); a throw in a
 * timer, a policy swap or a socket call is caught here and counted as an internal fault too.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { loadNative, SEND_STAT, SEND_STAT_SLOTS, type PollHandle } from './native.js';
import { PacketEngine, SLOT_BYTES, HEADROOM_BYTES, createRecvArrays, type SendList } from './engine.js';
import { COUNTER, bump } from './counters.js';
import { FlowTable } from '../flow/table.js';
import { Chain, type ChainFactoryInput } from '../chain.js';
import type { Settings } from '../config/settings.js';
import type { StageHealth } from '../pipeline/content.js';
import { parseTestFaults } from '../config/test-faults.js';

export interface WorkerInit {
  index: number;
  fd: number;
  rawFd: number;
  settings: Settings;
  counters: Float64Array;
  probeNonce: Uint8Array;
  /** The appliance's own IPv4 addresses, sorted (loop guard, source-guard.ts). */
  ownAddrs: Uint32Array;
  policy: ChainFactoryInput;
  /** 0 for the first worker of this slot, then the number of restarts (--test-faults hit the first one only). */
  incarnation: number;
  /** The DLP keyed-hash key, the same for every worker (--dlp-hash-key-file, or one random key per start). */
  dlpHashKey: Uint8Array;
}

export type WorkerMessage =
  | { type: 'policy'; policy: ChainFactoryInput }
  | { type: 'stop' };

export type WorkerReport =
  | { type: 'ready'; index: number }
  | { type: 'policy-applied'; index: number; generation: number }
  | { type: 'fault'; index: number; message: string; stack: string | undefined }
  | { type: 'log'; index: number; event: unknown }
  | { type: 'stage-stats'; index: number; stages: Record<string, Record<string, number>>; health: Record<string, StageHealth> };

/** Wake-ups are bounded: after this many batches we yield to the event loop (timers, messages). */
const MAX_BATCHES_PER_WAKE = 64;
const TICK_MS = 250;
/** Stage counters are posted to the main thread every this many ticks (1 s). */
const STAGE_STATS_EVERY_TICKS = 4;
/** Internal faults are reported to the main thread at most this often (ms): a bug must not flood the log. */
const FAULT_REPORT_INTERVAL_MS = 1000;
/** On stop: how long content stages may take to close their connections, ms. */
const STAGE_STOP_MS = 500;

function main(): void {
  const init = workerData as WorkerInit;
  const port = parentPort;
  if (port === null) throw new Error('worker-main must run in a worker thread');
  const native = loadNative();
  const s = init.settings;
  const counters = init.counters;
  const maxFlows = Math.max(16, Math.ceil(s.maxFlows / s.workers));
  const flows = new FlowTable({
    maxFlows,
    // Preallocated: untouched pages cost no RSS, and a table that doubles leaves each old generation to the next
    // full GC (measured in the running appliance: +116 MB at 1,000,000 flows, the 512k generation).
    initialCapacity: maxFlows,
    tcpIdleMs: s.flowIdleTcpS * 1000,
    otherIdleMs: s.flowIdleOtherS * 1000,
  });
  const onLog = (event: unknown): void => port.postMessage({ type: 'log', index: init.index, event } satisfies WorkerReport);
  const chain = new Chain(init.policy, onLog, s, Buffer.from(init.dlpHashKey));
  const engine: PacketEngine = new PacketEngine({
    settings: s,
    counters,
    flows,
    stages: chain.stages,
    probeNonce: Buffer.from(init.probeNonce),
    rejectBuilder: chain.rejectBuilder,
    flushTx: () => flush(engine.txBuf, engine.txSend),
    flushRx: () => flush(rxBuf, engine.rxSend),
    onContentLog: onLog,
    ownAddrs: init.ownAddrs,
    onFault: (err) => report(err),
  });
  engine.content.configure(chain.contentStages, chain.contentPolicy, chain.scopeOf);
  counters[COUNTER.POLICY_GENERATION] = init.policy.generation;

  const batch = s.batchSize;
  const rxBuf = Buffer.alloc(batch * SLOT_BYTES);
  const meta = createRecvArrays(batch);
  const stats = new Float64Array(1);
  const sendStats = new Float64Array(SEND_STAT_SLOTS);
  const useRaw = s.returnMode === 'raw';
  let lastFaultReport = 0;

  const flush = (buf: Buffer, list: SendList): void => {
    if (list.count === 0) return;
    let sent: number;
    sendStats[SEND_STAT.FAILED] = 0;
    sendStats[SEND_STAT.BYTES] = 0;
    try {
      sent = useRaw ? native.sendRawBatch(init.rawFd, buf, list, list.count, sendStats) : native.sendUdpBatch(init.fd, buf, list, list.count, sendStats);
    } catch (err) {
      // Only an error of the socket itself throws (native.ts); `sent` says how many went out before it.
      sent = (err as { sent?: number }).sent ?? 0;
      fault(err);
    }
    bump(counters, COUNTER.TX_PACKETS, sent);
    bump(counters, COUNTER.TX_BYTES, sendStats[SEND_STAT.BYTES]!);
    bump(counters, COUNTER.SEND_ERRORS, sendStats[SEND_STAT.FAILED]!);
    bump(counters, COUNTER.SEND_FAILED, list.count - sent);
    list.count = 0;
  };

  /** Logs a fault on the main thread, at most once per FAULT_REPORT_INTERVAL_MS. */
  const report = (err: unknown): void => {
    const now = performance.now();
    if (now - lastFaultReport < FAULT_REPORT_INTERVAL_MS) return;
    lastFaultReport = now;
    const e = err instanceof Error ? err : new Error(String(err));
    port.postMessage({ type: 'fault', index: init.index, message: e.message, stack: e.stack } satisfies WorkerReport);
  };

  const fault = (err: unknown): void => {
    bump(counters, COUNTER.INTERNAL_FAULTS);
    report(err);
  };

  /** Receives, processes and sends up to MAX_BATCHES_PER_WAKE batches; true when more may be waiting. */
  const drain = (): boolean => {
    for (let b = 0; b < MAX_BATCHES_PER_WAKE; b++) {
      let n: number;
      try {
        n = native.recvBatch(init.fd, rxBuf, SLOT_BYTES, HEADROOM_BYTES, batch, meta, stats);
      } catch (err) {
        fault(err);
        return false;
      }
      if (stats[0] !== 0) {
        bump(counters, COUNTER.KERNEL_RX_DROPS, stats[0]!);
        stats[0] = 0;
      }
      if (n === 0) return false;
      try {
        engine.processBatch(rxBuf, SLOT_BYTES, n, meta, performance.now());
      } catch (err) {
        fault(err); // outside any packet (the engine catches per packet): what is queued is still valid
      }
      flush(engine.txBuf, engine.txSend);
      flush(rxBuf, engine.rxSend);
      if (n < batch) return false;
    }
    return true;
  };

  let poll: PollHandle | undefined = native.poll(init.fd, () => void drain());
  let ticks = 0;
  const timer = setInterval(() => {
    if (++ticks % STAGE_STATS_EVERY_TICKS === 0) {
      const stages: Record<string, Record<string, number>> = {};
      for (const stage of chain.stages) if (stage.counters !== undefined) stages[stage.name] = { ...stage.counters };
      for (const stage of chain.contentStages) if (stage.counters !== undefined) stages[stage.name] = { ...stage.counters };
      port.postMessage({ type: 'stage-stats', index: init.index, stages, health: chain.health() } satisfies WorkerReport);
    }
    const now = performance.now();
    counters[COUNTER.HEARTBEAT_MS] = performance.timeOrigin + now;
    try {
      engine.tick(now);
    } catch (err) {
      fault(err);
    }
    flush(engine.txBuf, engine.txSend);
  }, TICK_MS);
  counters[COUNTER.HEARTBEAT_MS] = performance.timeOrigin + performance.now();

  port.on('message', (msg: WorkerMessage) => {
    if (msg.type === 'policy') {
      // Compiled completely before the swap; the swap happens between two batches (we are on the same thread).
      try {
        chain.apply(msg.policy);
        engine.setStages(chain.stages);
        engine.content.configure(chain.contentStages, chain.contentPolicy, chain.scopeOf);
        counters[COUNTER.POLICY_GENERATION] = msg.policy.generation;
        port.postMessage({ type: 'policy-applied', index: init.index, generation: msg.policy.generation } satisfies WorkerReport);
      } catch (err) {
        fault(err);
      }
    } else if (msg.type === 'stop') {
      // Stop (docs/operations.md, "Stopping"): no more wake-ups; the datagrams the socket had already received are
      // still processed and sent (until the socket is empty, for at most half of --shutdown-grace-ms while traffic
      // keeps coming), packets that stages hold are decided by their fail mode, the tx list is sent, then leave.
      poll?.close();
      poll = undefined;
      clearInterval(timer);
      const until = performance.now() + s.shutdownGraceMs / 2;
      while (drain() && performance.now() < until) {
        // more batches were waiting
      }
      try {
        engine.releaseHolds();
      } catch (err) {
        fault(err);
      }
      flush(engine.txBuf, engine.txSend);
      // Content stages close their scanner connections; a stage that does not stop in time is not waited for.
      void Promise.race([chain.stop(), new Promise((r) => setTimeout(r, STAGE_STOP_MS).unref())]).finally(() => port.close()); // the main thread sees the worker's exit
    }
  });
  injectFaults(s.testFaults, init);
  port.postMessage({ type: 'ready', index: init.index } satisfies WorkerReport);
}

/**
 * --test-faults (tests only, docs/configuration.md): faults that cannot be made real from outside a worker thread.
 * `stall` blocks the worker's thread (a busy loop: no packets, no heartbeat) for the given ms; `crash` throws from a
 * timer, which ends the worker as an uncaught exception would. Only the first incarnation of a worker is hit, so a
 * restarted worker runs normally.
 */
function injectFaults(spec: string, init: WorkerInit): void {
  if (spec === '' || init.incarnation !== 0) return;
  for (const f of parseTestFaults(spec)) {
    if (f.worker !== init.index) continue;
    setTimeout(() => {
      if (f.kind === 'crash') throw new Error(`test fault: worker ${init.index} crashes (--test-faults)`);
      const until = performance.now() + f.durationMs;
      while (performance.now() < until) {
        // stalled on purpose
      }
    }, f.afterMs).unref();
  }
}

main();
