/**
 * `gwlb-inspector run`: load the policy (in a worker thread, within --policy-load-timeout-ms and
 * --policy-load-max-mb; policy/bounded-load.ts), take the instance lock for the GENEVE address and port, start the
 * data plane and the health and stats listeners, reload the policy on SIGHUP or when the file (or a file it
 * includes) changes, stop cleanly on SIGTERM/SIGINT (stop receiving, flush, exit 0). Any start failure logs one
 * `start_failed` line, releases what it took and exits non-zero (2 for an invalid policy, with every error as
 * file:line:column; 1 otherwise); an invalid policy on reload is rejected, logged and counted, and the running
 * policy stays in force.
 */
import { Supervisor } from '../dataplane/supervisor.js';
import { acquireInstanceLock, InstanceLockedError, type InstanceLock } from '../dataplane/instance-lock.js';
import { SelfTest } from '../admin/self-test.js';
import { httpLimits, resolveStatsToken, startHealthServer, startStatsServer, type AdminServer } from '../admin/server.js';
import { createLogger } from '../util/logger.js';
import { PolicyManager, type BoundedReloadResult } from '../policy/reload.js';
import { formatIssue, sortIssues } from '../policy/errors.js';
import type { Settings } from '../config/settings.js';
import { createVerdictLog } from '../log/verdict-log.js';
import type { LogRouter } from '../log/router.js';
import { firewallVerdictEvent } from '../log/firewall-adapter.js';
import { contentLogEvent } from '../log/content-adapter.js';

/** Why start failed, for the start_failed line: which step, and a hint where one helps. */
type StartStep = 'instance_lock' | 'data_plane' | 'self_test' | 'admin_listener';

function startHint(step: StartStep, code: string | undefined): string | undefined {
  if (code === 'EPERM') return 'the raw return path needs CAP_NET_RAW (or --return-mode udp)';
  if (step === 'admin_listener' && code === 'EADDRINUSE') return 'another process listens on --admin-listen';
  if (step === 'data_plane' && code === 'EADDRINUSE') return 'another process (not gwlb-inspector) holds the GENEVE port';
  return undefined;
}

/** 'ADDR:PORT' → [ADDR, PORT]. */
function hostPort(hp: string): [string, number] {
  return [hp.slice(0, hp.lastIndexOf(':')), Number(hp.slice(hp.lastIndexOf(':') + 1))];
}

export async function runAppliance(settings: Settings): Promise<number> {
  const log = createLogger(settings.logLevel);
  const policy = new PolicyManager(settings.policy, {
    reevaluate: settings.reevaluateOnReload,
    allowTesting: settings.enableTestStages,
    ...(settings.policyRoot === '' ? {} : { root: settings.policyRoot }),
    bounds: { timeoutMs: settings.policyLoadTimeoutMs, maxHeapMb: settings.policyLoadMaxMb },
  });
  const first = await policy.loadBounded();
  if (!first.ok) {
    for (const issue of sortIssues(first.issues)) process.stderr.write(formatIssue(issue) + '\n');
    log.error('start_failed', { step: 'policy', reason: `policy ${settings.policy} is invalid (${first.issues.length} errors above)`, file: settings.policy, errors: first.issues.length });
    return 2;
  }
  // Verdict log: stdout, file and/or CloudWatch Logs through the router (docs/logging.md); never blocks workers.
  let verdictLog: LogRouter;
  try {
    verdictLog = await createVerdictLog(settings, { env: process.env, warn: (m, f) => log.warn(m, f) });
  } catch (err) {
    const e = err as Error & { code?: string };
    log.error('start_failed', { step: 'verdict_log', reason: e.message, code: e.code });
    return 2;
  }
  verdictLog.policyVersion = String(first.generation);
  verdictLog.emit({ kind: 'policy_reload', trigger: 'start', ok: true, file: settings.policy, errors: [] });
  let unreadableVerdicts = 0;

  // Any failure from here on releases everything taken so far (in reverse) and exits non-zero with one
  // start_failed line: a half-started appliance holding 6081 without a health endpoint is the worst outcome.
  let step: StartStep = 'instance_lock';
  let lock: InstanceLock | undefined;
  let supervisor: Supervisor | undefined;
  let selfTest: SelfTest | undefined;
  let health: AdminServer | undefined;
  let statsServer: AdminServer | undefined;
  try {
    lock = await acquireInstanceLock(settings.listen, settings.port);
    step = 'data_plane';
    supervisor = new Supervisor(settings, { generation: first.generation, document: first.loaded }, log);
    const sup = supervisor;
    sup.onVerdictLog = (raw) => {
      // Content stages post schema-shaped events (they carry `kind`); the firewall posts its own shape.
      if (typeof raw === 'object' && raw !== null && 'kind' in raw) {
        const e = contentLogEvent(raw);
        if (e === null) unreadableVerdicts++;
        else verdictLog.emit(e, Date.now());
        return;
      }
      const v = firewallVerdictEvent(raw);
      if (v === null) unreadableVerdicts++;
      else verdictLog.emit(v.event, Date.now(), v.suppressed);
    };
    await sup.start();
    step = 'self_test';
    const st = new SelfTest(settings.listen, settings.port, settings.workers, sup.probeNonce, sup.steeringKey);
    selfTest = st;
    st.start(settings.healthIntervalMs);
    step = 'admin_listener';
    const limits = httpLimits(settings);
    const sources = {
      supervisor: sup,
      selfTest: st,
      healthMaxAgeMs: settings.healthMaxAgeMs,
      policyLoaded: () => policy.currentLoaded !== null,
      extraStats: () => ({
        policy: { file: settings.policy, generation: policy.generation, ...policy.counters, lastErrors: policy.lastErrors.map(formatIssue) },
        admin: { health: health?.counters, stats: statsServer?.counters },
        verdictLog: { ...verdictLog.stats(), unreadableVerdicts },
      }),
    };
    const token = resolveStatsToken(settings.statsToken, settings.statsTokenFile);
    health = await startHealthServer(...hostPort(settings.adminListen), limits, sources);
    statsServer = await startStatsServer(...hostPort(settings.statsListen), limits, token, sources);
    if (token === '' && !hostPort(settings.statsListen)[0].startsWith('127.')) {
      log.warn('stats_unauthenticated', { statsListen: settings.statsListen, hint: '/stats and /metrics are reachable beyond loopback without a token: set --stats-token-file' });
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    health?.close();
    statsServer?.close();
    selfTest?.stop();
    await supervisor?.stop().catch(() => undefined);
    await lock?.release();
    await verdictLog.close(settings.logFlushMs);
    log.error('start_failed', {
      step,
      reason: e.message,
      code: e.code,
      holderPid: err instanceof InstanceLockedError ? err.holder.pid : undefined,
      hint: startHint(step, e.code),
    });
    return 1;
  }
  if (settings.gwlbSources === '') {
    log.warn('gwlb_sources_unrestricted', { message: 'GENEVE is accepted from any source address: set --gwlb-sources to the GWLB subnets (docs/configuration.md)' });
  }
  const addressOf = (a: AdminServer, fallback: string): string => {
    const addr = a.server.address();
    return typeof addr === 'object' && addr !== null ? `${addr.address}:${addr.port}` : fallback;
  };
  log.info('started', {
    listen: `${settings.listen}:${settings.port}`,
    admin: addressOf(health, settings.adminListen),
    stats: addressOf(statsServer, settings.statsListen),
    workers: settings.workers,
    returnMode: settings.returnMode,
    policy: settings.policy,
    policyGeneration: first.generation,
    gwlbSources: settings.gwlbSources === '' ? 'any' : settings.gwlbSources,
  });
  const sup = supervisor;
  const st = selfTest;
  const healthServer = health;
  const stats = statsServer;
  const instanceLock = lock;

  const applied = (why: 'SIGHUP' | 'file-change', r: BoundedReloadResult): void => {
    const trigger = why === 'SIGHUP' ? 'sighup' : 'file_change';
    if (!r.ok) {
      verdictLog.emit({ kind: 'policy_reload', trigger, ok: false, file: settings.policy, errors: sortIssues(r.issues).slice(0, 50).map((i) => formatIssue(i).slice(0, 512)) });
      log.error('policy_reload_rejected', { why, file: settings.policy, errors: sortIssues(r.issues).map(formatIssue), keptGeneration: r.generation });
      return;
    }
    sup.applyPolicy({ generation: r.generation, document: r.loaded, reevaluate: r.reevaluate });
    verdictLog.policyVersion = String(r.generation);
    verdictLog.emit({ kind: 'policy_reload', trigger, ok: true, file: settings.policy, errors: [] });
    log.info('policy_reloaded', { why, file: settings.policy, generation: r.generation });
  };
  const unwatch = policy.watchBounded((r) => applied('file-change', r));
  const onHup = (): void => void policy.loadBounded().then((r) => applied('SIGHUP', r));
  process.on('SIGHUP', onHup);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      unwatch();
      process.off('SIGHUP', onHup);
      st.stop();
      healthServer.close();
      stats.close();
      void sup
        .stop()
        .then(() => instanceLock.release())
        .then(() => verdictLog.close(settings.logFlushMs))
        .then(() => {
          log.info('stopped', { verdictLog: verdictLog.stats() });
          resolve(0);
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
