import t from 'tap';
import { readFileSync } from 'node:fs';
import { ClamdScanner } from '../../src/av/clamd.js';
import { eicarTestObject } from '../../src/av/eicar.js';
import type { ScanResult } from '../../src/av/result.js';
import { SIGNATURES_DIR, startTestClamd } from '../helpers/clamd.js';

const EICAR_SIGNATURE = 'GWI.Test.EICAR.UNOFFICIAL';

async function scanChunks(scanner: ClamdScanner, chunks: readonly Buffer[]): Promise<ScanResult> {
  const scan = scanner.begin();
  for (const c of chunks) if (!scan.write(c)) await scan.waitDrain();
  return scan.end();
}

/** A clean object of `n` bytes that matches none of our signatures. */
function cleanObject(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + ((i * 7) % 90);
  return b;
}

t.test('a real clamd over its unix socket and its TCP port', async (t) => {
  const clamd = await startTestClamd(t);
  for (const address of [clamd.unixAddress, clamd.tcpAddress]) {
    await t.test(address.slice(0, 4), async (t) => {
      const scanner = new ClamdScanner(address);
      t.same(await scanChunks(scanner, [eicarTestObject()]), { kind: 'infected', signature: EICAR_SIGNATURE }, 'EICAR is infected, named without the NUL');
      t.same(await scanChunks(scanner, [cleanObject(10_000)]), { kind: 'clean' }, 'a clean object is clean');
      t.same(await scanChunks(scanner, []), { kind: 'clean' }, 'an empty object is clean');
      t.equal(await scanner.ping(), true);
      t.match(await scanner.version(), /^ClamAV \d+\.\d+/);
      t.equal(scanner.counters.scans, 3);
      t.equal(scanner.counters.infected, 1);
      t.equal(scanner.counters.clean, 2);
      t.equal(scanner.counters.bytesSent, 68 + 10_000);
      t.equal(scanner.counters.active, 0, 'every connection is given back');
    });
  }
});

t.test('EICAR is detected however it is cut into chunks', async (t) => {
  const clamd = await startTestClamd(t);
  const scanner = new ClamdScanner(clamd.unixAddress);
  const e = eicarTestObject();
  const oneByte = [...e].map((b) => Buffer.of(b));
  t.same(await scanChunks(scanner, oneByte), { kind: 'infected', signature: EICAR_SIGNATURE }, 'streamed in 1-byte chunks');
  const withEmpty = [e.subarray(0, 30), Buffer.alloc(0), e.subarray(30)];
  t.same(await scanChunks(scanner, withEmpty), { kind: 'infected', signature: EICAR_SIGNATURE }, 'an empty write is not an end-of-object frame');
  // Inside a larger object, split at every position across two chunk boundaries.
  const before = cleanObject(3000);
  const body = Buffer.concat([before, e, cleanObject(2000)]);
  for (let cut = 3000; cut <= 3068; cut += 17) {
    const chunks = [body.subarray(0, cut), body.subarray(cut, cut + 20), body.subarray(cut + 20)];
    t.same(await scanChunks(scanner, chunks), { kind: 'infected', signature: EICAR_SIGNATURE }, `cut at ${cut} and ${cut + 20}`);
  }
  t.equal(scanner.counters.infected, 2 + 5);
});

t.test('a hash signature (.hdb) matches its exact test object only', async (t) => {
  const clamd = await startTestClamd(t);
  const scanner = new ClamdScanner(clamd.tcpAddress);
  const object = readFileSync(`${SIGNATURES_DIR}hdb-test-object.txt`);
  t.same(await scanChunks(scanner, [object.subarray(0, 10), object.subarray(10)]), { kind: 'infected', signature: 'GWI.Test.HashObject.UNOFFICIAL' });
  t.same(await scanChunks(scanner, [object.subarray(0, object.length - 1)]), { kind: 'clean' }, 'one byte less is another object');
});

t.test('objects past the size limit are never clean', async (t) => {
  await t.test('our own limit: the prefix is scanned, the rest is not sent', async (t) => {
    const clamd = await startTestClamd(t);
    const scanner = new ClamdScanner(clamd.unixAddress, { maxObjectBytes: 4096 });
    const big = await scanChunks(scanner, [cleanObject(3000), cleanObject(3000)]);
    t.equal(big.kind, 'not_scanned');
    t.match(big, { reason: 'size_limit' });
    t.equal(scanner.counters.bytesSent, 4096, 'stopped at the limit');
    t.equal(scanner.counters.bytesDiscarded, 6000 - 4096);
    const infectedPrefix = await scanChunks(scanner, [eicarTestObject(), cleanObject(10_000)]);
    t.same(infectedPrefix, { kind: 'infected', signature: EICAR_SIGNATURE }, 'an infected prefix is reported infected');
    t.same(await scanChunks(scanner, [cleanObject(4096)]), { kind: 'clean' }, 'exactly at the limit is scanned whole');
    t.equal(scanner.counters.notScanned.size_limit, 1);
  });

  await t.test("clamd's StreamMaxLength: its reply arrives before the end of the object", async (t) => {
    const clamd = await startTestClamd(t, { extraConfig: ['StreamMaxLength 64K'] });
    for (const address of [clamd.unixAddress, clamd.tcpAddress]) {
      const scanner = new ClamdScanner(address);
      const scan = scanner.begin();
      scan.write(cleanObject(70 * 1024));
      // Wait for clamd's answer before writing more: a write after clamd closed would lose its reply (EPIPE).
      const early = await scan.result;
      t.match(early, { kind: 'not_scanned', reason: 'size_limit' }, address);
      t.equal(scan.write(cleanObject(10)), true, 'later writes are dropped');
      t.same(await scan.end(), early);
      t.equal(scanner.counters.bytesDiscarded, 10);
    }
  });

  await t.test('clamd past MaxFileSize with AlertExceedsMax yes says FOUND Heuristics.Limits.Exceeded: size_limit, not infected', async (t) => {
    const clamd = await startTestClamd(t, { extraConfig: ['MaxFileSize 32K', 'MaxScanSize 32K', 'AlertExceedsMax yes'] });
    const scanner = new ClamdScanner(clamd.unixAddress);
    const r = await scanChunks(scanner, [cleanObject(40 * 1024)]);
    t.match(r, { kind: 'not_scanned', reason: 'size_limit', detail: /Heuristics\.Limits\.Exceeded/ });
    t.equal(scanner.counters.infected, 0);
  });
});

t.test('backpressure: write() says when to wait, waitDrain() resolves, every byte arrives', async (t) => {
  const clamd = await startTestClamd(t);
  const scanner = new ClamdScanner(clamd.tcpAddress, { highWaterBytes: 64 * 1024, maxBufferedBytes: 1024 * 1024 });
  const scan = scanner.begin();
  const chunk = cleanObject(256 * 1024);
  let waited = 0;
  for (let i = 0; i < 40; i++) {
    if (!scan.write(chunk)) {
      waited++;
      await scan.waitDrain();
    }
  }
  scan.write(eicarTestObject());
  t.same(await scan.end(), { kind: 'infected', signature: EICAR_SIGNATURE }, 'the EICAR tail after 10 MiB is found');
  t.ok(waited > 0, 'write() returned false at least once');
  t.equal(scanner.counters.bytesSent, 40 * 256 * 1024 + 68);
});
