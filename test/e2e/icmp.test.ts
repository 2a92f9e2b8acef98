// ICMP end to end: real pings from the client namespace, through the real helper and service.
// A ping socket (an unprivileged user's ping, net.ipv4.ping_group_range) and a raw socket (ping
// run as root) are each credited to the ping program; every answer the tray can give to an ICMP
// prompt saves a rule (or a session decision) that decides the next ping without a prompt.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tempDir } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';
import { TrayClient, type Message, type TrayAnswer } from '../support/guiTray.js';

const NOBODY = 65534;

/** A copy of ping in a directory every user may enter (file capabilities are not copied). */
function copyPing(name: string): { exe: string; remove: () => void } {
  const dir = tempDir('bastion-ping-');
  chmodSync(dir.path, 0o755);
  const exe = `${dir.path}/${name}`;
  copyFileSync('/usr/bin/ping', exe);
  chmodSync(exe, 0o755);
  return { exe, remove: dir.remove };
}

/** One ping from the client namespace, optionally as another user; resolves with its exit code. */
function ping(fw: TestFirewall, exe: string, asUid?: number, waitS = 20): Promise<number | null> {
  const argv = [exe, '-4', '-n', '-c', '1', '-W', String(waitS), fw.net.serverV4];
  const cmd = asUid === undefined ? argv : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', ...argv];
  const child = fw.net.spawn(fw.net.client, cmd[0]!, cmd.slice(1));
  child.stdout?.resume();
  child.stderr?.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

// An echo request from a process holding two raw ICMP sockets of one uid: nothing tells which
// one sent it, so nobody is credited (the prompt says "unknown"). Exit 0 on a reply.
const AMBIGUOUS_PING = `
import socket, struct, sys
a = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
b = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def csum(d):
    s = sum(struct.unpack('!%dH' % (len(d) // 2), d))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
body = struct.pack('!BBHHH', 8, 0, 0, 0x4242, 1) + b'bastion!'
body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
a.sendto(body, (sys.argv[1], 0))
a.settimeout(float(sys.argv[2]))
try:
    while True:
        data = a.recv(2048)
        if data[20] == 0 and data[24:26] == b'\\x42\\x42': sys.exit(0)
except socket.timeout:
    sys.exit(1)
`;

function ambiguousPing(fw: TestFirewall, waitS = 20): Promise<number | null> {
  const child = fw.net.spawn(fw.net.client, 'python3', ['-c', AMBIGUOUS_PING, fw.net.serverV4, String(waitS)]);
  child.stdout?.resume();
  child.stderr?.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function rulesFile(fw: TestFirewall): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(fw.rulesPath, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function waitForRule(fw: TestFirewall, key: string, allow: boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (rulesFile(fw)[key] === allow) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`rule ${key} = ${allow} not saved; rules.json: ${JSON.stringify(rulesFile(fw))}`);
}

async function withFirewall(
  config: Record<string, unknown>,
  fn: (fw: TestFirewall, tray: TrayClient) => Promise<void>,
  before?: (fw: TestFirewall) => void,
): Promise<void> {
  const fw = new TestFirewall({ config: { timeout_seconds: 60, ...config } });
  try {
    before?.(fw);
    await fw.start();
    const tray = await TrayClient.connect(fw.guiSocket);
    try {
      await fn(fw, tray);
    } finally {
      await tray.close();
    }
  } finally {
    await fw.close();
  }
}

function requestsFor(tray: TrayClient, appName: string): Message[] {
  return tray.ofType('connection_request').filter((m) => m['app_name'] === appName);
}

describe('ICMP prompts', () => {
  it('an unprivileged ping socket is credited to ping, and "Always" saves a rule that decides the next ping', async () => {
    const copy = copyPing('ping-sock');
    try {
      await withFirewall(
        { mode: 'enforcement' },
        async (fw, tray) => {
          const first = ping(fw, copy.exe, NOBODY);
          const req = await tray.nextRequest('ping-sock');
          assert.equal(req['app_path'], copy.exe);
          assert.equal(req['protocol'], 'ICMP');
          assert.equal(req['dest_ip'], fw.net.serverV4);
          assert.equal(req['dest_port'], 0);
          tray.answer(req, { allow: true, duration: 'always' });
          assert.equal(await first, 0);
          await waitForRule(fw, `${copy.exe}:*`, true);
          assert.equal(tray.ofType('error').length, 0, JSON.stringify(tray.ofType('error')));

          assert.equal(await ping(fw, copy.exe, NOBODY, 5), 0, 'the rule allows the next ping');
          assert.equal(requestsFor(tray, 'ping-sock').length, 1, 'no second prompt');
        },
        (fw) => fw.net.run(fw.net.client, 'sysctl', ['-qw', 'net.ipv4.ping_group_range=0 2147483647']),
      );
    } finally {
      copy.remove();
    }
  });

  it('a raw-socket ping (root) is credited to ping, and "Always deny, all ports" blocks the next ping without a prompt', async () => {
    const copy = copyPing('ping-raw');
    try {
      await withFirewall({ mode: 'enforcement' }, async (fw, tray) => {
        const first = ping(fw, copy.exe, undefined, 3);
        const req = await tray.nextRequest('ping-raw');
        assert.equal(req['app_path'], copy.exe);
        assert.equal(req['protocol'], 'ICMP');
        tray.answer(req, { allow: false, duration: 'always', allPorts: true });
        assert.notEqual(await first, 0);
        await waitForRule(fw, `${copy.exe}:*`, false);

        assert.notEqual(await ping(fw, copy.exe, undefined, 2), 0, 'the rule blocks the next ping');
        assert.equal(requestsFor(tray, 'ping-raw').length, 1, 'no second prompt');
      });
    } finally {
      copy.remove();
    }
  });

  const answers: [name: string, answer: TrayAnswer, saved: boolean][] = [
    ['"Always"', { allow: true, duration: 'always' }, true],
    ['"Always, all ports"', { allow: true, duration: 'always', allPorts: true }, true],
    ['"Session"', { allow: true, duration: 'session' }, false],
  ];
  for (const [name, answer, saved] of answers) {
    it(`ICMP that no process can be credited with: ${name} keeps "@dest:<ip>:*" so the next one is decided without a prompt`, async () => {
      await withFirewall({ mode: 'enforcement' }, async (fw, tray) => {
        const first = ambiguousPing(fw);
        const req = await tray.nextRequest('unknown');
        assert.equal(req['app_path'], 'unknown');
        assert.equal(req['protocol'], 'ICMP');
        tray.answer(req, answer);
        assert.equal(await first, 0);
        if (saved) await waitForRule(fw, `@dest:${fw.net.serverV4}:*:*`, true);
        assert.deepEqual(tray.ofType('error'), [], 'no "is not a valid subject" error');

        assert.equal(await ambiguousPing(fw, 5), 0);
        assert.equal(requestsFor(tray, 'unknown').length, 1, 'no second prompt');
      });
    });
  }

  it('learning mode: the tray\'s add_rule for an unknown ICMP sender (port 0) saves "@dest:<ip>:*:*"', async () => {
    await withFirewall({ mode: 'learning' }, async (fw, tray) => {
      assert.equal(await ambiguousPing(fw), 0, 'learning mode allows at once');
      const req = await tray.nextRequest('unknown');
      assert.equal(req['learning_mode'], true);
      assert.equal(req['dest_port'], 0);
      tray.answer(req, { allow: true, duration: 'always' });
      await waitForRule(fw, `@dest:${fw.net.serverV4}:*:*`, true);
      assert.deepEqual(tray.ofType('error'), []);
    });
  });
});
