import t from 'tap';
import { ClamdAddressError, formatClamdAddress, parseClamdAddress } from '../../src/av/address.js';
import { resolveSettings } from '../../src/config/settings.js';

t.test('unix:/path and tcp:host:port parse into typed addresses', async (t) => {
  t.same(parseClamdAddress('unix:/run/clamav/clamd.ctl'), { kind: 'unix', path: '/run/clamav/clamd.ctl' });
  t.same(parseClamdAddress('tcp:127.0.0.1:3310'), { kind: 'tcp', host: '127.0.0.1', port: 3310 });
  t.same(parseClamdAddress('tcp:clamd.internal:3310'), { kind: 'tcp', host: 'clamd.internal', port: 3310 });
  t.same(parseClamdAddress('tcp:[::1]:3310'), { kind: 'tcp', host: '::1', port: 3310 });
  for (const a of ['unix:/run/clamav/clamd.ctl', 'tcp:127.0.0.1:3310', 'tcp:[::1]:3310']) t.equal(formatClamdAddress(parseClamdAddress(a)), a);
});

t.test('bad addresses are faults with a stable code and say what is wrong', async (t) => {
  const bad: [string, RegExp][] = [
    ['/run/clamav/clamd.ctl', /expected unix:/],
    ['unix:clamd.sock', /absolute/],
    [`unix:/${'a'.repeat(107)}`, /longer than 107 bytes/],
    ['tcp:127.0.0.1', /expected tcp:host:port/],
    ['tcp:127.0.0.1:0', /port must be 1-65535/],
    ['tcp:127.0.0.1:65536', /port must be 1-65535/],
    ['tcp:127.0.0.1:33 10', /port must be/],
    ['tcp:::1:3310', /brackets/],
    ['tcp:[127.0.0.1]:3310', /not an IPv6 address/],
    ['tcp:bad_host:3310', /not an IP address or host name/],
    ['tcp::3310', /not an IP address or host name/],
    ['http://127.0.0.1:3310', /expected unix:/],
  ];
  for (const [text, why] of bad) {
    t.throws(() => parseClamdAddress(text), { name: 'ClamdAddressError', code: 'GWI_ERR_CLAMD_ADDRESS', message: why }, text);
  }
  t.type(new ClamdAddressError('x'), Error);
});

t.test('the clamd setting (--clamd, GWLB_INSPECTOR_CLAMD) is validated as an address at start', async (t) => {
  t.equal(resolveSettings({}, {}).clamd, 'unix:/run/clamav/clamd.ctl', "Debian clamav-daemon's socket by default");
  t.equal(resolveSettings({}, { GWLB_INSPECTOR_CLAMD: 'tcp:10.0.0.9:3310' }).clamd, 'tcp:10.0.0.9:3310');
  t.throws(() => resolveSettings({ clamd: 'tcp:10.0.0.9' }, {}), /^--clamd: "tcp:10\.0\.0\.9" is not valid; allowed: unix:\/path\/clamd\.sock or tcp:host:port$/);
  t.throws(() => resolveSettings({}, { GWLB_INSPECTOR_CLAMD: 'clamd.sock' }), /GWLB_INSPECTOR_CLAMD/);
});
