import t from 'tap';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import {
  LAB_NS_PREFIX,
  LabError,
  cleanup,
  createLabNetwork,
  labNamespaces,
  labPrefix,
  labPrerequisites,
  listNamespaces,
  run,
} from '../../src/lab/netns.js';

t.test('lab ids and prefixes', async (t) => {
  t.equal(labPrefix('ab12'), 'gwi-ab12-');
  t.same(labNamespaces('x1'), { prefix: 'gwi-x1-', client: 'gwi-x1-client', gateway: 'gwi-x1-gw', server: 'gwi-x1-server' });
  for (const bad of ['', 'UPPER', 'has-dash', 'a'.repeat(13), '../x']) t.throws(() => labPrefix(bad), LabError, bad);
  await t.rejects(cleanup('other-'), { code: 'LAB_BAD_PREFIX' }, 'never touches namespaces outside gwi-*');
});

const problems = await labPrerequisites();
if (problems.length > 0) {
  t.fail(`the lab needs root, ip netns and /dev/net/tun:\n  - ${problems.join('\n  - ')}`);
} else {
  t.test('network: created, fails closed without an emulator, cleaned up after a "crash"', async (t) => {
    const id = `nt${process.pid.toString(36)}`.slice(0, 12);
    const ns = labNamespaces(id);
    t.teardown(() => cleanup(ns.prefix).then(() => undefined));
    await createLabNetwork(id);
    const mine = (await listNamespaces()).filter((n) => n.startsWith(ns.prefix)).sort();
    t.same(mine, [ns.client, ns.gateway, ns.server].sort());
    await t.rejects(createLabNetwork(id), { code: 'LAB_EXISTS' });

    const local = await run('ip', ['netns', 'exec', ns.client, 'ping', '-c', '1', '-W', '1', '10.77.1.1']);
    t.equal(local.code, 0, 'client reaches its gateway');
    const mtu = await run('ip', ['-n', ns.gateway, 'link', 'show', 'tun0']);
    t.match(mtu.stdout, /mtu 8500/);
    const across = await run('ip', ['netns', 'exec', ns.client, 'ping', '-c', '1', '-W', '1', '10.77.2.2']);
    t.not(across.code, 0, 'nobody reads the TUN: traffic between client and server is dropped, never routed around');

    // A leftover process inside the lab (as after a crash) is killed by cleanup.
    const sleeper = spawn('ip', ['netns', 'exec', ns.gateway, 'sleep', '600'], { detached: true, stdio: 'ignore' });
    sleeper.unref();
    const exited = new Promise((resolve) => sleeper.once('exit', resolve));
    await delay(100);
    const removed = await cleanup(ns.prefix);
    t.same(removed.sort(), mine);
    await exited;
    t.equal((await listNamespaces()).filter((n) => n.startsWith(ns.prefix)).length, 0);
    t.same(await cleanup(ns.prefix), [], 'idempotent');
    t.ok(LAB_NS_PREFIX.length > 0);
  });
}
