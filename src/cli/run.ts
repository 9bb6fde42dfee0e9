/**
 * `gwlb-inspector run`: load the policy (in a worker thread, within --policy-load-timeout-ms and
 * --policy-load-max-mb; policy/bounded-load.ts), start the data plane and the health and stats listeners, reload the policy on SIGHUP
 * or when the file (or a file it includes) changes, stop cleanly on SIGTERM/SIGINT (stop receiving, flush,
 * exit 0). An invalid policy at start is fatal (exit 2, every error as file:line:column); an invalid policy on
 * reload is rejected, logged and counted, and the running policy stays in force.
 */
import { Supervisor } from '../dataplane/supervisor.js';
import { SelfTest } from '../admin/self-test.js';
import { httpLimits, resolveStatsToken, startHealthServer, startStatsServer, type AdminServer } from '../admin/server.js';
import { createLogger } from '../util/logger.js';
import { PolicyManager, type BoundedReloadResult } from '../policy/reload.js';
import { formatIssue, sortIssues } from '../policy/errors.js';
import type { Settings } from '../config/settings.js';

export async function runAppliance(settings: Settings): Promise<number> {
  const log = createLogger(settings.logLevel);
  const policy = new PolicyManager(settings.policy, {
    reevaluate: settings.reevaluateOnReload,
    ...(settings.policyRoot === '' ? {} : { root: settings.policyRoot }),
    bounds: { timeoutMs: settings.policyLoadTimeoutMs, maxHeapMb: settings.policyLoadMaxMb },
  });
  const first = await policy.loadBounded();
  if (!first.ok) {
    for (const issue of sortIssues(first.issues)) process.stderr.write(formatIssue(issue) + '\n');
    log.error('policy_invalid', { file: settings.policy, errors: first.issues.length });
    return 2;
  }
  const supervisor = new Supervisor(settings, { generation: first.generation, document: first.loaded }, log);
  // Verdict log: one JSON object per line on stdout (docs/policy.md describes the event).
  supervisor.onVerdictLog = (event) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...(event as object) }) + '\n');
  try {
    await supervisor.start();
  } catch (err) {
    const e = err as Error & { code?: string };
    log.error('start_failed', { message: e.message, code: e.code, hint: e.code === 'EPERM' ? 'the raw return path needs CAP_NET_RAW (or --return-mode udp)' : undefined });
    await supervisor.stop().catch(() => undefined);
    return 1;
  }
  const selfTest = new SelfTest(settings.listen, settings.port, settings.workers, supervisor.probeNonce);
  selfTest.start(settings.healthIntervalMs);
  const hostPort = (hp: string): [string, number] => [hp.slice(0, hp.lastIndexOf(':')), Number(hp.slice(hp.lastIndexOf(':') + 1))];
  const limits = httpLimits(settings);
  let health: AdminServer | undefined;
  let statsServer: AdminServer | undefined;
  const sources = {
    supervisor,
    selfTest,
    healthMaxAgeMs: settings.healthMaxAgeMs,
    policyLoaded: () => policy.currentLoaded !== null,
    extraStats: () => ({
      policy: { file: settings.policy, generation: policy.generation, ...policy.counters, lastErrors: policy.lastErrors.map(formatIssue) },
      admin: { health: health?.counters, stats: statsServer?.counters },
    }),
  };
  try {
    const token = resolveStatsToken(settings.statsToken, settings.statsTokenFile);
    health = await startHealthServer(...hostPort(settings.adminListen), limits, sources);
    statsServer = await startStatsServer(...hostPort(settings.statsListen), limits, token, sources);
    if (token === '' && !hostPort(settings.statsListen)[0].startsWith('127.')) {
      log.warn('stats_unauthenticated', { statsListen: settings.statsListen, hint: '/stats and /metrics are reachable beyond loopback without a token: set --stats-token-file' });
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    log.error('start_failed', { message: e.message, code: e.code });
    health?.close();
    statsServer?.close();
    selfTest.stop();
    await supervisor.stop().catch(() => undefined);
    return 1;
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
  });

  const applied = (why: string, r: BoundedReloadResult): void => {
    if (!r.ok) {
      log.error('policy_reload_rejected', { why, file: settings.policy, errors: sortIssues(r.issues).map(formatIssue), keptGeneration: r.generation });
      return;
    }
    supervisor.applyPolicy({ generation: r.generation, document: r.loaded, reevaluate: r.reevaluate });
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
      selfTest.stop();
      health.close();
      statsServer.close();
      void supervisor.stop().then(() => {
        log.info('stopped', {});
        resolve(0);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
