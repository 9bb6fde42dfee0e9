/**
 * The CLI's Node version gate (src/cli/require-node.ts): one line naming the version found and the one needed.
 * Checked for real once with Node 18.20.8 (Debian 12's major): `node dist/cli/main.js run` printed the line and
 * exited 1; CI runs the suite under Node 20 and the image's Node, where the gate must let the CLI through.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { CLI, REPO } from '../helpers/appliance.js';
import { MIN_NODE_MAJOR, unsupportedNode } from '../../src/cli/require-node.js';

t.test('versions below the minimum get one line naming both versions; supported ones pass', async (t) => {
  t.equal(MIN_NODE_MAJOR, 20);
  for (const v of ['18.20.8', '16.0.0', '19.9.0', 'not-a-version', '']) {
    const msg = unsupportedNode(v);
    t.type(msg, 'string', v);
    t.match(msg, new RegExp(`Node\\.js ${v.replace(/\./g, '\\.')} is not supported; it needs Node\\.js 20 or newer`));
    t.notMatch(msg, /\n/, 'a single line');
  }
  for (const v of ['20.0.0', '20.20.2', '22.1.0', '26.12.1']) t.equal(unsupportedNode(v), null, v);
});

t.test('the CLI runs under the Node running the tests', async (t) => {
  const r = spawnSync(process.execPath, [CLI, '--version'], { cwd: REPO, encoding: 'utf8' });
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
});
