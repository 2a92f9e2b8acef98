// Forwarded traffic, as it is: a namespace behind a bridge with MASQUERADE stands for a
// container or a VM. Its connections pass the host's FORWARD chain, not OUTPUT, so Bastion
// neither decides nor logs them (README, "Forwarded traffic"), while the host's own programs
// are decided as ever. This test pins that down: if forwarded traffic is ever decided, it fails
// and the README must change with it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestFirewall } from '../support/firewall.js';

describe('forwarded traffic (a container behind a bridge with MASQUERADE)', () => {
  it('passes undecided and uncounted in enforcement with default deny, while the host is denied; bastion status says so', async () => {
    const fw = new TestFirewall({ config: { mode: 'enforcement', default_action: 'deny' } });
    try {
      const container = fw.net.addContainer();
      await fw.start();
      const url = `http://${fw.net.serverV4}/`;
      const fromContainer = fw.net.run(container.ns, 'curl', ['-s', '-o', '/dev/null', '-m', '3', url], 10_000);
      assert.equal(fromContainer.code, 0, `the container's connection did not get out: ${fromContainer.stderr}`);
      for (let i = 0; i < 20 && fw.connectionsReceived(80) === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(fw.connectionsReceived(80), 1, 'the server did not see one connection from the (masqueraded) host address');
      assert.equal(fw.http(fw.net.serverV4, 1), false, "the host's own curl got out without a rule");
      const counters = await fw.counters();
      assert.deepEqual(counters, { total_connections: 1, allowed_connections: 0, blocked_connections: 1 }, 'the forwarded connection was counted');
      const status = await fw.status();
      assert.match(String(status['forwarded']), /^not decided: traffic forwarded for containers and VMs/);
    } finally {
      await fw.close();
    }
  });
});
