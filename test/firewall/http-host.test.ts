import t from 'tap';
import fc from 'fast-check';
import { Buffer } from 'node:buffer';
import { NAME_RESULT } from '../../src/firewall/client-name-result.js';
import { parseHttpHost } from '../../src/firewall/http-host.js';
import { createClientNameOut, NAME_SOURCE, readClientName } from '../../src/firewall/client-name.js';

function host(text: string): { r: number; name: string } {
  const b = Buffer.from(text, 'latin1');
  const out = { name: '' };
  const r = parseHttpHost(b, 0, b.length, out);
  return { r, name: out.name };
}

const FOUND = NAME_RESULT.FOUND;
const MALFORMED = NAME_RESULT.MALFORMED;

t.test('the Host header of an HTTP/1.1 request', async (t) => {
  t.same(host('GET /index.html HTTP/1.1\r\nUser-Agent: curl/8\r\nHost: WWW.Example.com\r\nAccept: */*\r\n\r\n'), { r: FOUND, name: 'www.example.com' }, 'case-insensitive, lower-cased');
  t.same(host('POST /x HTTP/1.1\r\nhost:example.com:8080\r\n\r\n'), { r: FOUND, name: 'example.com' }, 'port stripped, no space after the colon');
  t.same(host('GET / HTTP/1.1\r\nHOST:   example.com.  \r\n\r\n'), { r: FOUND, name: 'example.com' }, 'OWS and a trailing dot');
  t.same(host('GET / HTTP/1.1\nHost: example.com\n\n'), { r: FOUND, name: 'example.com' }, 'bare LF line ends');
  t.same(host('GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n'), { r: FOUND, name: '[2001:db8::1]' }, 'IPv6 literal');
  t.same(host('GET http://Proxy.Example/x HTTP/1.1\r\nHost: proxy.example\r\n\r\n'), { r: FOUND, name: 'proxy.example' }, 'absolute-form agreeing with Host');
  t.same(host('GET https://only.example:8443/x?y HTTP/1.1\r\n\r\n'), { r: FOUND, name: 'only.example' }, 'absolute-form without Host');
  t.same(host('CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n'), { r: FOUND, name: 'tunnel.example' }, 'CONNECT authority-form');
});

t.test('ambiguous or broken heads are refused, not guessed at', async (t) => {
  t.equal(host('GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n').r, MALFORMED, 'two Host lines (RFC 9112 §3.2)');
  t.equal(host('GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n').r, MALFORMED, 'absolute-form disagreeing with Host');
  t.equal(host('GET / HTTP/1.1\r\nHost : a.example\r\n\r\n').r, MALFORMED, 'whitespace before the colon (RFC 9112 §5.1)');
  t.equal(host('GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\nHost: a.example\r\n\r\n').r, MALFORMED, 'obs-fold (RFC 9112 §5.2)');
  t.equal(host('GET / HTTP/1.1\r\nHost: a b.example\r\n\r\n').r, MALFORMED, 'space inside the host');
  t.equal(host('GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n').r, MALFORMED, 'userinfo');
  t.equal(host('GET /  HTTP/1.1\r\nHost: a.example\r\n\r\n').r, MALFORMED, 'extra space in the request line');
});

t.test('no name, or not HTTP/1.x', async (t) => {
  t.equal(host('GET / HTTP/1.0\r\nAccept: */*\r\n\r\n').r, NAME_RESULT.ABSENT, 'HTTP/1.0 without Host');
  t.equal(host('GET / HTTP/1.1\r\nHost:\r\n\r\n').r, NAME_RESULT.ABSENT, 'empty Host');
  t.equal(host('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n').r, NAME_RESULT.NOT_THIS_PROTOCOL, 'HTTP/2 prior knowledge');
  t.equal(host('SSH-2.0-OpenSSH_9.6\r\n').r, NAME_RESULT.NOT_THIS_PROTOCOL, 'SSH');
  t.equal(host('get / HTTP/1.1\r\n\r\n').r, NAME_RESULT.NOT_THIS_PROTOCOL, 'methods are case-sensitive');
  t.equal(host('GET / HTTP/1.1\r\nHost: a.example\r\n').r, NAME_RESULT.NEED_MORE, 'the head is not over');
  t.equal(host('GE').r, NAME_RESULT.NEED_MORE, 'could still be GET');
});

t.test('dispatch: TLS or HTTP', async (t) => {
  const out = createClientNameOut();
  const http = Buffer.from('HEAD / HTTP/1.1\r\nHost: h.example\r\n\r\n');
  t.equal(readClientName(http, 0, http.length, new Uint8Array(1024), out), FOUND);
  t.equal(out.source, NAME_SOURCE.HTTP);
  const ssh = Buffer.from('SSH-2.0-x\r\n');
  t.equal(readClientName(ssh, 0, ssh.length, new Uint8Array(1024), out), NAME_RESULT.NOT_THIS_PROTOCOL);
});

t.test('same answer under any segmentation; never throws (fast-check)', async (t) => {
  const req = 'GET /a HTTP/1.1\r\nAccept: */*\r\nHost: seg.example\r\nX: y\r\n\r\n';
  fc.assert(
    fc.property(fc.integer({ min: 0, max: req.length }), (k) => {
      const r = host(req.slice(0, k));
      return k === req.length ? r.r === FOUND && r.name === 'seg.example' : r.r === NAME_RESULT.NEED_MORE;
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      const r = host(`GET / HTTP/1.1\r\n${s}`).r;
      return r >= 0 && r <= 5;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});
