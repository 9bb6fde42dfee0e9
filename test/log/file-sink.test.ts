import t from 'tap';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogRouter, type UnstampedEvent } from '../../src/log/router.js';
import { RotatingFileSink } from '../../src/log/sinks/file.js';

function anomaly(i: number): UnstampedEvent {
  return { kind: 'anomaly', stage: 'engine', code: 'inner_truncated', action: 'drop', reason: `event ${i}`, flow: null, count: 1 };
}

function router(path: string, maxBytes: number, maxFiles: number): LogRouter {
  return new LogRouter({ sinks: [new RotatingFileSink({ path, maxBytes, maxFiles })], queueBytes: 16 << 20, ratePerS: 1e9, sampleEvery: 1, applianceId: 'a' });
}

const reasons = (text: string): string[] => text.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { reason: string }).reason);

t.test('rotates by size, keeps at most maxFiles, every file under the cap, newest events in the live file', async (t) => {
  const dir = t.testdir({});
  const path = join(dir, 'verdicts.log');
  const r = router(path, 10_000, 3);
  for (let i = 0; i < 2000; i++) {
    r.emit(anomaly(i));
    if (i % 100 === 99) await new Promise((res) => setImmediate(res));
  }
  await r.close(10_000);
  t.same(readdirSync(dir).sort(), ['verdicts.log', 'verdicts.log.1', 'verdicts.log.2'], 'bounded number of files');
  for (const f of readdirSync(dir)) t.ok(statSync(join(dir, f)).size <= 10_000, `${f} is within maxBytes`);
  const live = reasons(readFileSync(path, 'utf8'));
  const older = reasons(readFileSync(`${path}.1`, 'utf8'));
  const oldest = reasons(readFileSync(`${path}.2`, 'utf8'));
  t.equal(live.at(-1), 'event 1999', 'the live file ends with the newest event');
  const all = [...oldest, ...older, ...live];
  const firstKept = Number(all[0]?.split(' ')[1]);
  t.same(all, Array.from({ length: 2000 - firstKept }, (_, i) => `event ${firstKept + i}`), 'the kept files hold one unbroken, ordered run of events');
  t.match(r.stats(), { sinks: { file: { lines: 2000 } } });
  t.ok(((r.stats() as { sinks: { file: { rotations: number } } }).sinks.file.rotations) >= 2);
});

t.test('appends to an existing file and counts its size toward rotation', async (t) => {
  const dir = t.testdir({});
  const path = join(dir, 'v.log');
  writeFileSync(path, 'x'.repeat(950) + '\n');
  const r = router(path, 1000, 2);
  r.emit(anomaly(1));
  await r.close(10_000);
  t.equal(readFileSync(`${path}.1`, 'utf8'), 'x'.repeat(950) + '\n', 'the old content rotated out whole');
  t.same(reasons(readFileSync(path, 'utf8')), ['event 1']);
});

t.test('maxFiles 1 keeps only the live file', async (t) => {
  const dir = t.testdir({});
  const path = join(dir, 'v.log');
  const r = router(path, 500, 1);
  for (let i = 0; i < 50; i++) {
    r.emit(anomaly(i));
    await new Promise((res) => setImmediate(res));
  }
  await r.close(10_000);
  t.same(readdirSync(dir), ['v.log']);
  t.equal(reasons(readFileSync(path, 'utf8')).at(-1), 'event 49');
});
