// Extended rules end to end (docs/rules.md): real NFQUEUE and iptables in namespaces this test
// makes, the real helper and service, rules.d files beside rules.json. Each criterion: a
// connection that matches is allowed, a near miss gets enforcement's default (deny).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { CLI, TSX } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';

const CURL = '/usr/bin/curl';
const PYTHON = '/usr/bin/python3.11';
const DASH = '/usr/bin/dash';

function writeRulesD(fw: TestFirewall, name: string, rules: unknown[]): void {
  mkdirSync(`${fw.dir.path}/rules.d`, { recursive: true });
  writeFileSync(`${fw.dir.path}/rules.d/${name}`, JSON.stringify(rules, null, 2));
}

/** curl from the client namespace to the IPv4 server on port, through a command line of sh. */
function curlVia(fw: TestFirewall, prefix: string, port: number, host = fw.net.serverV4): boolean {
  const url = host.includes(':') ? `http://[${host}]:${port}/` : `http://${host}:${port}/`;
  return fw.net.run(fw.net.client, DASH, ['-c', `${prefix}${CURL} -s -o /dev/null -m 2 ${url}`], 8000).code === 0;
}

async function request(fw: TestFirewall, message: Record<string, unknown>, reply: string): Promise<Record<string, unknown>> {
  const conn = await GuiConnection.connect(fw.guiSocket);
  try {
    return await conn.request(message, reply);
  } finally {
    conn.close();
  }
}

describe('each criterion of an extended rule, with a near miss', () => {
  const fw = new TestFirewall({ serverPorts: [80, 81, 82, 83, 84, 85, 86, 87, 88], udpPorts: [83] });
  const scripts = `${fw.dir.path}/scripts`;
  const appScope = `/sys/fs/cgroup/unified/app-flatpak-org.example.Test-${process.pid}.scope`;
  const curlHash = createHash('sha256').update(readFileSync(CURL)).digest('hex');

  before(async () => {
    mkdirSync(scripts);
    const fetch = `import urllib.request\nurllib.request.urlopen('http://${fw.net.serverV4}:85/', timeout=2).read()\n`;
    writeFileSync(`${scripts}/ok.py`, fetch);
    writeFileSync(`${scripts}/other.py`, fetch);
    mkdirSync(appScope);
    writeRulesD(fw, '10-criteria.json', [
      { action: 'allow', port: 81, user: 0 },
      { action: 'allow', port: 82, dest: `${fw.net.serverV4}/32` },
      { action: 'allow', port: 83, proto: 'udp' },
      { action: 'allow', port: 84, exe: CURL, parent: DASH },
      { action: 'allow', port: 85, script: `${scripts}/ok.py` },
      { action: 'allow', port: 86, app_id: 'org.example.Test' },
      { action: 'allow', port: 87, exe: CURL, sha256: curlHash },
      { action: 'allow', port: 88, exe: CURL, sha256: '0'.repeat(64) },
    ]);
    await fw.start();
  });
  after(async () => {
    await fw.close();
    rmdirSync(appScope);
  });

  it('user: root is allowed, nobody is not', () => {
    assert.equal(curlVia(fw, '', 81), true);
    assert.equal(curlVia(fw, 'exec setpriv --reuid 65534 --regid 65534 --clear-groups ', 81), false);
  });

  it('dest: the IPv4 block is allowed, the server over IPv6 is not', () => {
    assert.equal(curlVia(fw, '', 82), true);
    assert.equal(curlVia(fw, '', 82, fw.net.serverV6), false);
  });

  it('proto: UDP to the port passes, TCP to it does not', async () => {
    const send = `require('dgram').createSocket('udp4').send('x', 83, '${fw.net.serverV4}', (e, n, s) => setTimeout(() => process.exit(0), 100))`;
    fw.net.run(fw.net.client, process.execPath, ['-e', send]);
    assert.equal(curlVia(fw, '', 83), false);
    // The server's output is read by this process's event loop, which run() blocked.
    for (let i = 0; i < 20 && fw.datagramsReceived(83) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(fw.datagramsReceived(83) >= 1, 'the UDP datagram did not arrive');
  });

  it('parent: curl started by sh is allowed, curl started by the test is not', () => {
    assert.equal(fw.net.run(fw.net.client, DASH, ['-c', `${CURL} -s -o /dev/null -m 2 http://${fw.net.serverV4}:84/; exit $?`]).code, 0);
    assert.equal(fw.net.run(fw.net.client, CURL, ['-s', '-o', '/dev/null', '-m', '2', `http://${fw.net.serverV4}:84/`]).code === 0, false);
  });

  it('script: python3 running ok.py (given relative to its cwd) is allowed, the same code as other.py is not', () => {
    assert.equal(fw.net.run(fw.net.client, DASH, ['-c', `cd ${scripts} && exec ${PYTHON} ok.py`]).code, 0);
    assert.notEqual(fw.net.run(fw.net.client, DASH, ['-c', `cd ${scripts} && exec ${PYTHON} other.py`]).code, 0);
  });

  it('app_id: a process in the app scope is allowed, one outside it is not', async () => {
    // `ip netns exec` mounts a /sys of its own without cgroups: the test moves the shell in from outside.
    const child = fw.net.spawn(fw.net.client, DASH, ['-c', `read go; exec ${CURL} -s -o /dev/null -m 2 http://${fw.net.serverV4}:86/`], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    writeFileSync(`${appScope}/cgroup.procs`, String(child.pid));
    child.stdin!.end('go\n');
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0);
    assert.equal(curlVia(fw, 'exec ', 86), false);
  });

  it('sha256: the pinned hash of curl allows it; a pin that does not hold asks again and says why', async () => {
    assert.equal(curlVia(fw, 'exec ', 87), true);
    assert.equal(curlVia(fw, 'exec ', 88), false);
    const line = await fw.daemon!.waitFor('pinned SHA-256 does not hold');
    assert.equal(line['why'], `${CURL} now has SHA-256 ${curlHash}, not the pinned ${'0'.repeat(64)}`);
  });
});

describe('precedence end to end, and rules.d read-only to GUI clients', () => {
  const fw = new TestFirewall({ serverPorts: [80, 81, 82], rules: { [`${CURL}:*`]: true } });

  before(async () => {
    writeRulesD(fw, '20-precedence.json', [
      { action: 'deny', exe: CURL, port: 81 },
      { action: 'allow', exe: CURL, port: 82 },
      { action: 'deny', user: 0, port: 82 },
    ]);
    await fw.start();
  });
  after(() => fw.close());

  it('rules.d beats rules.json; at equal specificity deny beats allow', () => {
    assert.equal(curlVia(fw, 'exec ', 80), true, 'no extended rule matches: rules.json allows');
    assert.equal(curlVia(fw, 'exec ', 81), false, 'the rules.d deny beats the rules.json allow');
    assert.equal(curlVia(fw, 'exec ', 82), false, 'exe+port and user+port: the deny wins');
  });

  it('the GUI lists rules.d rules read-only, never in list_rules, and cannot delete them', async () => {
    const listed = await request(fw, { type: 'list_extended_rules' }, 'extended_rules');
    const rules = listed['rules'] as Record<string, unknown>[];
    assert.equal(rules.length, 3);
    assert.deepEqual(rules[0], {
      action: 'deny',
      exe: CURL,
      port: 81,
      source: `${fw.dir.path}/rules.d/20-precedence.json#1`,
      origin: 'rules.d',
      read_only: true,
    });
    const legacy = await request(fw, { type: 'list_rules' }, 'rules_list');
    assert.deepEqual(Object.keys(legacy['rules'] as object), [`${CURL}:*`, 'applications', 'services']);
    const deleted = await request(fw, { type: 'delete_rule', key: `${fw.dir.path}/rules.d/20-precedence.json#1` }, 'rule_deleted');
    assert.equal(deleted['success'], false);
    assert.equal(curlVia(fw, 'exec ', 81), false, 'the rules.d rule still applies');
  });
});

describe('rules.d on SIGHUP', () => {
  const fw = new TestFirewall({ rules: { [`${CURL}:*`]: true } });
  before(() => fw.start());
  after(() => fw.close());

  it('a file added to rules.d takes effect at the reload, also over a path rule the kernel applied', async () => {
    assert.equal(curlVia(fw, 'exec ', 80), true);
    writeRulesD(fw, '40-late.json', [{ action: 'deny', dest: `${fw.net.serverV4}/32` }]);
    fw.daemon!.child.kill('SIGHUP');
    for (let i = 0; i < 100 && fw.daemon!.count('extended rules loaded') < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(fw.daemon!.count('extended rules loaded'), 2);
    await new Promise((r) => setTimeout(r, 300)); // the helper gets the new kernel rules right after the reset
    assert.equal(curlVia(fw, 'exec ', 80), false, 'the rules.d deny did not take over from the rules.json allow');
    assert.equal(curlVia(fw, 'exec ', 80, fw.net.serverV6), true, 'the rules.json allow stopped applying elsewhere');
  });
});

describe('a list of 1,000,000 entries', () => {
  const fw = new TestFirewall({ rules: { [`${CURL}:*`]: true } });

  before(async () => {
    mkdirSync(`${fw.dir.path}/lists.d`);
    writeRulesD(fw, '30-list.json', [{ action: 'deny', list: 'big' }]);
    await fw.start();
  });
  after(() => fw.close());

  it('is loaded when it appears in lists.d: a listed address is denied, an unlisted one allowed', { timeout: 180_000 }, async () => {
    assert.equal(fw.http(fw.net.serverV4), true, 'before the list: rules.json allows curl');
    const lines: string[] = ['# 999,998 addresses, the server, and one line that is not an entry'];
    for (let i = 0; i < 999_998; i++) lines.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    lines.push(`0.0.0.0 ${fw.net.serverV4}.sslip.test`, fw.net.serverV4, 'not an entry');
    // Written aside and renamed in, as a deployment tool would: the watcher sees one complete file.
    writeFileSync(`${fw.dir.path}/lists.d/.big.tmp`, lines.join('\n') + '\n');
    spawnSync('mv', [`${fw.dir.path}/lists.d/.big.tmp`, `${fw.dir.path}/lists.d/big.list`]);
    const withBig = (): Record<string, unknown> | undefined => fw.daemon!.lines.find((l) => l.msg === 'lists loaded' && (l['lists'] as string[]).length > 0);
    for (let waited = 0; withBig() === undefined && waited < 170_000; waited += 200) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(withBig()?.['lists'], ['big:1000000']);
    const skipped = await fw.daemon!.waitFor('lists: lines or files skipped');
    assert.match(String((skipped['errors'] as string[])[0]), /big\.list: 1 bad lines skipped \(line 1000002: not an entry\)/);
    assert.equal(fw.http(fw.net.serverV4, 1), false, 'the listed address was not denied');
    assert.equal(fw.http(fw.net.serverV6), true, 'an unlisted address was denied');
  });
});

describe('bastion check-config exit codes', () => {
  it('exits 0 for a good rules.d and 1 when a rule would be skipped', () => {
    const fw = { dir: `${process.env['TMPDIR'] ?? '/tmp'}/bastion-check-${process.pid}` };
    mkdirSync(`${fw.dir}/rules.d`, { recursive: true });
    const check = (): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ['--import', TSX, CLI, 'check-config', '--rules-dir', `${fw.dir}/rules.d`], { encoding: 'utf8' });
    writeFileSync(`${fw.dir}/rules.d/a.json`, JSON.stringify([{ action: 'allow', exe: CURL }]));
    assert.equal(check().status, 0);
    writeFileSync(`${fw.dir}/rules.d/b.json`, JSON.stringify([{ action: 'allow', exe: 'curl' }]));
    const bad = check();
    assert.equal(bad.status, 1);
    assert.match(String(bad.stderr), /b\.json#1: "exe" must be an absolute path/);
    spawnSync('rm', ['-rf', fw.dir]);
  });
});
