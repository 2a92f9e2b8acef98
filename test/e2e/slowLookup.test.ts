// A socket the helper cannot find within one packet's lookup time (5 ms) is still credited to
// its program on that packet: the search goes on at a later turn instead of giving the packet
// to no one. Real helper and service, the queue deciding (--no-kernel-verdicts), enforcement
// with default deny and no one to ask: a SYN credited to no one is dropped, and the program
// would wait for its retransmission (1 s) at least.
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { TestFirewall } from '../support/firewall.js';

const PYTHON = realpathSync('/usr/bin/python3');
/** Open files the client holds before it connects: its socket comes after all of them. */
const OPEN_FILES = 12_000;

// Opens OPEN_FILES files, then connects once and says how long connect() took.
const CLIENT = `
import os, resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < ${OPEN_FILES + 100}:
    sys.exit('the hard limit of open files (%d) is below ${OPEN_FILES + 100}' % hard)
resource.setrlimit(resource.RLIMIT_NOFILE, (${OPEN_FILES + 100}, hard))
held = [os.open('/dev/null', os.O_RDONLY) for _ in range(${OPEN_FILES})]
started = time.monotonic()
s = socket.create_connection((sys.argv[1], 80), timeout=5)
print('connected in %.1f ms' % ((time.monotonic() - started) * 1000))
`;

describe('a socket found only after more than one lookup', () => {
  let fw: TestFirewall;
  before(async () => {
    fw = await new TestFirewall({
      rules: { [`${PYTHON}:80`]: true },
      config: { mode: 'enforcement', default_action: 'deny' },
      helperArgs: ['--no-kernel-verdicts'],
    }).start();
  });
  after(async () => {
    await fw?.close();
  });

  it(`a program holding ${OPEN_FILES} files gets its first connection out by its rule`, async (t: TestContext) => {
    const run = fw.net.run(fw.net.client, PYTHON, ['-c', CLIENT, fw.net.serverV4], 20_000);
    // As the service hears them (bastion_helper_lookup_retries_total).
    const { lookupRetries } = await fw.helperCounters((c) => c.lookupRetries > 0);
    t.diagnostic(`${run.stdout.trim()}; the helper's lookups that went on at a later turn: ${lookupRetries}`);
    assert.equal(run.code, 0, `the allowed program's connection failed: ${run.stderr}`);
    const ms = Number(/^connected in ([\d.]+) ms/.exec(run.stdout)?.[1]);
    // Its first SYN got through: a retransmitted one would come a second later.
    assert.ok(ms < 1000, `connected in ${ms} ms`);
    // Else the socket was found in time and this test showed nothing.
    assert.ok(lookupRetries > 0, 'the socket was found within one lookup');
  });
});
