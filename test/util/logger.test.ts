/** The operational logger (src/util/logger.ts): one JSON object per line, filtered by level. */
import t from 'tap';
import { createLogger } from '../../src/util/logger.js';

t.test('writes one JSON line per call with time, level, message and fields; drops levels below the threshold', async (t) => {
  const lines: string[] = [];
  const log = createLogger('warn', (l) => void lines.push(l));
  log.debug('d');
  log.info('i');
  log.warn('w', { port: 6081 });
  log.error('e', { reason: 'x', level: 'spoofed' });
  t.equal(lines.length, 2, 'debug and info are below warn');
  for (const l of lines) t.match(l, /^\{.*\}\n$/, 'one line, newline-terminated');
  const [w, e] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(w, { level: 'warn', msg: 'w', port: 6081 });
  t.ok(!Number.isNaN(Date.parse(String(w?.['time']))), 'ISO time');
  t.equal(e?.['msg'], 'e');
  t.equal(e?.['reason'], 'x');
});

t.test('debug lets everything through; error only errors', async (t) => {
  const all: string[] = [];
  const dbg = createLogger('debug', (l) => void all.push(l));
  dbg.debug('a');
  dbg.info('b');
  dbg.warn('c');
  dbg.error('d');
  t.equal(all.length, 4);
  const few: string[] = [];
  const err = createLogger('error', (l) => void few.push(l));
  err.warn('no');
  err.error('yes');
  t.same(few.map((l) => (JSON.parse(l) as { msg: string }).msg), ['yes']);
});
