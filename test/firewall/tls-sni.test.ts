import t from 'tap';
import fc from 'fast-check';
import { Buffer } from 'node:buffer';
import { NAME_RESULT } from '../../src/firewall/client-name-result.js';
import { parseTlsClientHello } from '../../src/firewall/tls-sni.js';
import { captureClientHello, splitIntoTwoRecords } from '../fixtures/client-hello.js';

const SCRATCH = new Uint8Array(16 * 1024);

function parse(b: Uint8Array): { r: number; name: string } {
  const out = { name: '' };
  const r = parseTlsClientHello(b, 0, b.length, SCRATCH, out);
  return { r, name: out.name };
}

/** Independent reading of the SNI: walk the extensions by hand with Buffer reads. */
function sniByHand(hello: Buffer): string | undefined {
  let p = 5 + 4 + 2 + 32;
  p += 1 + (hello[p] as number);
  p += 2 + hello.readUInt16BE(p);
  p += 1 + (hello[p] as number);
  const end = p + 2 + hello.readUInt16BE(p);
  p += 2;
  while (p < end) {
    const type = hello.readUInt16BE(p);
    const len = hello.readUInt16BE(p + 2);
    if (type === 0) return hello.toString('latin1', p + 9, p + 9 + hello.readUInt16BE(p + 7));
    p += 4 + len;
  }
  return undefined;
}

t.test('a real ClientHello from node:tls (OpenSSL)', async (t) => {
  const hello = await captureClientHello({ servername: 'WWW.Example.COM' });
  t.equal(hello[0], 22, 'a handshake record');
  t.equal(sniByHand(hello), 'WWW.Example.COM', 'the fixture carries the name (read independently)');
  t.same(parse(hello), { r: NAME_RESULT.FOUND, name: 'www.example.com' }, 'read, lower-cased');

  t.test('every prefix is "need more", never a wrong answer', async (t) => {
    for (let k = 0; k < hello.length; k++) {
      const r = parse(hello.subarray(0, k)).r;
      if (r !== NAME_RESULT.NEED_MORE) t.fail(`prefix of ${k} bytes gave ${r}`);
    }
    t.pass(`${hello.length} prefixes`);
  });

  t.test('the handshake split over two TLS records (scratch reassembly)', async (t) => {
    for (const at of [1, 3, 4, 40, 100, hello.length - 6]) {
      const two = splitIntoTwoRecords(hello, at);
      t.same(parse(two), { r: NAME_RESULT.FOUND, name: 'www.example.com' }, `split at ${at}`);
      t.equal(parse(two.subarray(0, two.length - 1)).r, NAME_RESULT.NEED_MORE);
    }
  });

  t.test('a scratch smaller than the hello: too large (the byte budget)', async (t) => {
    const out = { name: '' };
    t.equal(parseTlsClientHello(splitIntoTwoRecords(hello, 50), 0, hello.length + 5, new Uint8Array(64), out), NAME_RESULT.TOO_LARGE);
  });

  t.test('same answer under any segmentation (fast-check)', async (t) => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: hello.length }), (k) => {
        // Whatever arrived so far: either need more, or (all of it) the name.
        const r = parse(hello.subarray(0, k));
        return k === hello.length ? r.r === NAME_RESULT.FOUND && r.name === 'www.example.com' : r.r === NAME_RESULT.NEED_MORE;
      }),
    );
    t.pass();
  });
});

t.test('a TLS 1.2-only ClientHello, and one without SNI (connecting to an IP address)', async (t) => {
  const v12 = await captureClientHello({ servername: 'legacy.example.org', maxVersion: 'TLSv1.2' });
  t.same(parse(v12), { r: NAME_RESULT.FOUND, name: 'legacy.example.org' });
  const none = await captureClientHello();
  t.equal(sniByHand(none), undefined, 'node sends no SNI to an IP address');
  t.equal(parse(none).r, NAME_RESULT.ABSENT);
});

t.test('malformed and foreign input', async (t) => {
  const hello = await captureClientHello({ servername: 'a.example' });
  t.equal(parse(Buffer.from('GET / HTTP/1.1\r\n')).r, NAME_RESULT.NOT_THIS_PROTOCOL, 'HTTP');
  t.equal(parse(Buffer.from([22, 2, 0, 0, 0])).r, NAME_RESULT.NOT_THIS_PROTOCOL, 'record version major must be 3');
  const serverHello = Buffer.from(hello);
  serverHello[5] = 2;
  t.equal(parse(serverHello).r, NAME_RESULT.NOT_THIS_PROTOCOL, 'a ServerHello is not what a client sends first');
  const badLen = Buffer.from(hello);
  badLen.writeUInt16BE(badLen.readUInt16BE(3) - 1, 3);
  badLen.writeUIntBE(badLen.readUIntBE(6, 3) - 1, 6, 3);
  t.equal(parse(badLen.subarray(0, badLen.length - 1)).r, NAME_RESULT.MALFORMED, 'extensions no longer fill the message');
  t.equal(parse(Buffer.from([22, 3, 1, 0, 0])).r, NAME_RESULT.MALFORMED, 'zero-length handshake record');

  // Two server_name extensions: refused, so the firewall and the server cannot read different names.
  const dup = duplicateSni(hello);
  t.equal(parse(dup).r, NAME_RESULT.MALFORMED, 'duplicate server_name extension');
});

t.test('never throws on arbitrary bytes (fast-check)', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, tlsish) => {
      const b = Buffer.from(bytes);
      if (tlsish && b.length > 5) {
        b[0] = 22;
        b[1] = 3;
        b[5] = 1;
      }
      const r = parse(b).r;
      return r >= 0 && r <= 5;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

/** Appends a second server_name extension to a ClientHello (fixing every enclosing length). */
function duplicateSni(hello: Buffer): Buffer {
  const ext = Buffer.from([0, 0, 0, 10, 0, 8, 0, 0, 5, ...Buffer.from('b.bad')]);
  const out = Buffer.concat([hello, ext]);
  out.writeUInt16BE(out.readUInt16BE(3) + ext.length, 3);
  out.writeUIntBE(out.readUIntBE(6, 3) + ext.length, 6, 3);
  let p = 5 + 4 + 2 + 32;
  p += 1 + (out[p] as number);
  p += 2 + out.readUInt16BE(p);
  p += 1 + (out[p] as number);
  out.writeUInt16BE(out.readUInt16BE(p) + ext.length, p);
  return out;
}
