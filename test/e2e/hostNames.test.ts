// Host names end to end: a tiny DNS server in the server namespace answers a test client's
// query; the helper reads that answer on its way in (never asking anything itself); the client
// then connects to the address it got, and that connection carries the name: @host rules
// (exact and *.suffix) decide it, a different name does not match, and the prompt shows
// "<comm> (<host>)" as the old daemon did. The helper is told (--resolv-conf) that the server
// namespace's DNS server is the system's resolver, as /etc/resolv.conf would say.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { tempDir } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';
import { TrayClient } from '../support/guiTray.js';

// Answers every A query on argv[1]:53 with the address argv[2] (default: argv[1]), TTL 60.
const DNS_SERVER = `
import socket, struct, sys
ip = socket.inet_aton(sys.argv[2] if len(sys.argv) > 2 else sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(2048)
    end = 12
    while q[end] != 0: end += 1 + q[end]
    question = q[12:end + 5]
    header = q[:2] + struct.pack('!HHHHH', 0x8180, 1, 1, 0, 0)
    answer = struct.pack('!HHHIH', 0xc00c, 1, 1, 60, 4) + ip
    s.sendto(header + question + answer, peer)
`;

// Resolves argv[2] at the DNS server argv[1], then connects to the answer on port argv[3].
// Exit 0: connected; 1: the connection failed (blocked); 2: no DNS answer.
const CLIENT = `
import socket, struct, sys, random
server, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
qname = b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0'
query = struct.pack('!HHHHHH', random.randrange(65536), 0x0100, 1, 0, 0, 0) + qname + struct.pack('!HH', 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(query, (server, 53))
try:
    answer = u.recv(2048)
except socket.timeout:
    sys.exit(2)
ip = socket.inet_ntoa(answer[-4:])
try:
    socket.create_connection((ip, port), timeout=float(sys.argv[4])).close()
except OSError:
    sys.exit(1)
sys.exit(0)
`;

/** Runs CLIENT in the client namespace (as `asUid` when given); its exit code. */
function resolveAndConnect(fw: TestFirewall, name: string, timeoutS = 2, resolver = fw.net.serverV4, asUid?: number): Promise<number | null> {
  const client = ['-c', CLIENT, resolver, name, '80', String(timeoutS)];
  // The user's own python3 by its path: root's PATH may lead where that user cannot go.
  const [cmd, ...args] =
    asUid === undefined
      ? ['python3', ...client]
      : ['setpriv', '--reuid', String(asUid), '--regid', String(asUid), '--clear-groups', '/usr/bin/python3', ...client];
  const child = fw.net.spawn(fw.net.client, cmd!, args);
  child.stdout?.resume();
  child.stderr?.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * A firewall whose helper takes `nameservers` (default: the server namespace's DNS server) as
 * the system's resolvers, as /etc/resolv.conf would name them.
 */
function dnsFirewall(rules: Record<string, boolean>, nameservers?: (net: TestFirewall['net']) => string[]): { fw: TestFirewall; remove: () => void } {
  const conf = tempDir('bastion-resolv-');
  const resolvConf = join(conf.path, 'resolv.conf');
  const fw = new TestFirewall({ config: { mode: 'enforcement', default_action: 'deny', timeout_seconds: 60 }, helperArgs: ['--resolv-conf', resolvConf] });
  writeFileSync(resolvConf, `# test\n${(nameservers?.(fw.net) ?? [fw.net.serverV4]).map((a) => `nameserver ${a}\n`).join('')}`);
  // The DNS queries themselves are allowed by address: the names are what is tested.
  writeFileSync(fw.rulesPath, JSON.stringify({ [`@dest:${fw.net.serverV4}:53:*`]: true, ...rules }));
  return { fw, remove: conf.remove };
}

async function withDns(rules: Record<string, boolean>, fn: (fw: TestFirewall) => Promise<void>): Promise<void> {
  const { fw, remove } = dnsFirewall(rules);
  const dns = fw.net.spawn(fw.net.server, 'python3', ['-c', DNS_SERVER, fw.net.serverV4]);
  dns.stderr?.resume();
  try {
    await fw.start();
    await fn(fw);
  } finally {
    dns.kill('SIGKILL');
    await fw.close();
    remove();
  }
}

const CONNECTED = 0;
const BLOCKED = 1;
const NO_ANSWER = 2;

describe('host names from snooped DNS answers', () => {
  it('an @host rule and a *.suffix rule match the name the client resolved, a different name does not', async () => {
    await withDns({ '@host:app.example.test:80': true, '@host:*.suffix.test:80': true }, async (fw) => {
      assert.equal(await resolveAndConnect(fw, 'other.example.test'), BLOCKED, 'a name no rule names: the default denies');
      assert.equal(await resolveAndConnect(fw, 'app.example.test'), CONNECTED, 'the exact @host rule');
      assert.equal(await resolveAndConnect(fw, 'www.suffix.test'), CONNECTED, 'the *.suffix rule');
      assert.equal(await resolveAndConnect(fw, 'deep.www.suffix.test'), CONNECTED, 'the *.suffix rule, two labels down');
      assert.equal(await resolveAndConnect(fw, 'suffix.test'), BLOCKED, '*.suffix.test does not name suffix.test itself');
      assert.equal(await resolveAndConnect(fw, 'APP.Example.Test'), CONNECTED, 'names compare without case');
    });
  });

  it('a deny @host rule blocks the name while the address is allowed under another name', async () => {
    await withDns({ '@host:*.ads.test:*': false, '@host:news.test:80': true }, async (fw) => {
      assert.equal(await resolveAndConnect(fw, 'news.test'), CONNECTED);
      assert.equal(await resolveAndConnect(fw, 'tracker.ads.test'), BLOCKED);
    });
  });

  it('the helper queues only DNS replies, from a mangle INPUT chain of its own that it removes on exit', async () => {
    await withDns({}, async (fw) => {
      for (const family of [4, 6] as const) {
        const rules = fw.net.run(fw.net.client, family === 4 ? 'iptables' : 'ip6tables', ['-t', 'mangle', '-S']).stdout;
        assert.match(rules, /^-A INPUT -j BASTION-DNS$/m);
        assert.match(
          rules,
          /^-A BASTION-DNS -p udp -m udp --sport 53 -m conntrack --ctstate ESTABLISHED --ctdir REPLY .*-j NFQUEUE --queue-num 2 --queue-bypass$/m,
        );
        assert.match(
          rules,
          /^-A BASTION-DNS -p tcp -m tcp --sport 53 -m conntrack --ctstate ESTABLISHED --ctdir REPLY .*-j NFQUEUE --queue-num 2 --queue-bypass$/m,
        );
      }
      await fw.helper!.stop();
      for (const family of [4, 6] as const) {
        for (const table of ['mangle', 'filter']) {
          assert.doesNotMatch(fw.net.run(fw.net.client, family === 4 ? 'iptables' : 'ip6tables', ['-t', table, '-S']).stdout, /BASTION-DNS/);
        }
      }
    });
  });

  it('an inbound firewall rule still judges DNS answers after the helper has read them', async () => {
    await withDns({ '@host:app.example.test:80': true }, async (fw) => {
      const drop = ['-p', 'udp', '--sport', '53', '-j', 'DROP'];
      fw.net.run(fw.net.client, 'iptables', ['-A', 'INPUT', ...drop]);
      assert.equal(await resolveAndConnect(fw, 'app.example.test'), NO_ANSWER, "the filter table's INPUT drop applies");
      fw.net.run(fw.net.client, 'iptables', ['-D', 'INPUT', ...drop]);
      assert.equal(await resolveAndConnect(fw, 'app.example.test'), CONNECTED);
    });
  });

  it('the prompt shows "<comm> (<host>)"', async () => {
    await withDns({}, async (fw) => {
      const tray = await TrayClient.connect(fw.guiSocket);
      try {
        const connecting = resolveAndConnect(fw, 'shown.example.test', 30);
        const req = await tray.nextRequest();
        assert.match(String(req['app_name']), /^python3(\.[0-9]+)? \(shown\.example\.test\)$/);
        assert.equal(req['dest_ip'], fw.net.serverV4);
        tray.answer(req, { allow: true, duration: 'once' });
        assert.equal(await connecting, CONNECTED);
      } finally {
        await tray.close();
      }
    });
  });
});

// Issue 18, item 5: forged host names. An unprivileged user's program asks a resolver the
// user runs (here in the server namespace, on an address /etc/resolv.conf does not name),
// which says www.bank.example is an address no rule allows. `@host:www.bank.example:80` must
// not let that connection out, and the prompt and the decision feed must say the name is
// unverified; the same name from the configured resolver still satisfies the rule.
const ATTEMPTS = 10;

// Waits on UDP port argv[1] without asking anything; takes the address in the first datagram
// that arrives as www.bank.example's and connects to it on port 80. Exit codes as CLIENT's.
const UNASKED = `
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('0.0.0.0', int(sys.argv[1])))
u.settimeout(5)
print('ready', flush=True)
try:
    answer = u.recv(2048)
except socket.timeout:
    sys.exit(2)
try:
    socket.create_connection((socket.inet_ntoa(answer[-4:]), 80), timeout=1).close()
except OSError:
    sys.exit(1)
sys.exit(0)
`;

// An off-path sender's forgery: from argv[1]:53 (the configured resolver's address, through a
// raw socket) to argv[2]:argv[3], an answer nobody asked for: www.bank.example is argv[4].
const SPOOF = `
import socket, struct, sys
src, dst, dport, ip = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
qname = b''.join(bytes([len(l)]) + l.encode() for l in 'www.bank.example'.split('.')) + b'\\0'
dns = struct.pack('!HHHHHH', 0x1234, 0x8180, 1, 1, 0, 0) + qname + struct.pack('!HH', 1, 1)
dns += struct.pack('!HHHIH', 0xc00c, 1, 1, 60, 4) + socket.inet_aton(ip)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.bind((src, 0))
s.sendto(struct.pack('!HHHH', 53, dport, 8 + len(dns), 0) + dns, (dst, 0))
`;
const USER = `bastion-dns${process.pid % 100000}`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('a forged host name from a resolver the attacker runs', () => {
  let fw: TestFirewall;
  let removeConf = (): void => undefined;
  let uid = -1;
  let attackerResolver = '';
  /** The address the forged answer names: no rule allows it. */
  let deniedIp = '';
  const resolvers: ReturnType<TestFirewall['net']['spawn']>[] = [];

  before(async () => {
    sh('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', USER]);
    uid = Number(sh('id', ['-u', USER]).trim());
    ({ fw, remove: removeConf } = dnsFirewall({}));
    const prefix = fw.net.serverV4.replace(/\.\d+$/, '');
    attackerResolver = `${prefix}.3`;
    deniedIp = `${prefix}.4`;
    const rules = { [`@dest:${fw.net.serverV4}:53:*`]: true, [`@dest:${attackerResolver}:53:*`]: true, '@host:www.bank.example:80': true };
    writeFileSync(fw.rulesPath, JSON.stringify(rules));
    for (const address of [attackerResolver, deniedIp]) fw.net.run(fw.net.server, 'ip', ['addr', 'add', `${address}/32`, 'dev', 'lo']);
    resolvers.push(fw.net.spawn(fw.net.server, 'python3', ['-c', DNS_SERVER, fw.net.serverV4]));
    resolvers.push(fw.net.spawn(fw.net.server, 'python3', ['-c', DNS_SERVER, attackerResolver, deniedIp]));
    for (const r of resolvers) r.stderr?.resume();
    await fw.start();
  });

  after(async () => {
    for (const r of resolvers) r.kill('SIGKILL');
    await fw?.close();
    removeConf();
    try {
      sh('userdel', [USER]);
    } catch {
      // never created
    }
  });

  it(`the attacker's answer does not satisfy the @host rule: 0 of ${ATTEMPTS} connections out`, async () => {
    const codes: (number | null)[] = [];
    for (let i = 0; i < ATTEMPTS; i++) codes.push(await resolveAndConnect(fw, 'www.bank.example', 1, attackerResolver, uid));
    assert.ok(
      codes.every((c) => c === CONNECTED || c === BLOCKED),
      `every query answered, every connection tried: ${codes.join(' ')}`,
    );
    const out = codes.filter((c) => c === CONNECTED).length;
    assert.equal(out, 0, `connections out: ${out} of ${ATTEMPTS} (${codes.join(' ')})`);
    assert.equal(fw.connectionsReceived(80), 0, 'the server saw no connection');
  });

  it("an answer nobody asked for, forged with the configured resolver's address, names nothing: 0 of 5 out", async () => {
    const codes: (number | null)[] = [];
    for (let i = 0; i < 5; i++) {
      const port = String(41000 + i);
      const target = fw.net.spawn(fw.net.client, 'setpriv', [
        '--reuid',
        String(uid),
        '--regid',
        String(uid),
        '--clear-groups',
        '/usr/bin/python3',
        '-c',
        UNASKED,
        port,
      ]);
      target.stderr?.resume();
      const exited = new Promise<number | null>((resolve) => target.once('exit', (code) => resolve(code)));
      await new Promise<void>((resolve) => target.stdout!.once('data', () => resolve()));
      const spoof = await fw.net.runAsync(fw.net.server, 'python3', ['-c', SPOOF, fw.net.serverV4, fw.net.clientV4, port, deniedIp]);
      assert.equal(spoof.code, 0, spoof.stderr);
      codes.push(await exited);
    }
    assert.ok(
      codes.every((c) => c === BLOCKED),
      `the forgery arrived and every connection was refused: ${codes.join(' ')}`,
    );
    assert.equal(fw.connectionsReceived(80), 0);
  });

  it('the prompt and the decision feed say the name is unverified', async () => {
    const tray = await TrayClient.connect(fw.guiSocket);
    const feed = await GuiConnection.connect(fw.guiSocket);
    try {
      await feed.request({ type: 'subscribe', feed: 'decisions' }, 'subscribed');
      const decisions: Record<string, unknown>[] = [];
      feed.onMessage((m) => {
        if (m['type'] === 'decision' && m['dest_ip'] === deniedIp) decisions.push(m);
      });
      const connecting = resolveAndConnect(fw, 'www.bank.example', 8, attackerResolver, uid);
      const req = await tray.nextRequest();
      assert.equal(req['dest_ip'], deniedIp);
      assert.match(String(req['app_name']), /^python3(\.[0-9]+)? \(www\.bank\.example, unverified\)$/);
      tray.answer(req, { allow: false, duration: 'once' });
      assert.equal(await connecting, BLOCKED);
      for (let i = 0; i < 50 && decisions.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(decisions[0]?.['unverified_host'], 'www.bank.example');
      assert.equal(decisions[0]?.['host'], undefined, 'an unverified name is never given as the host');
    } finally {
      feed.close();
      await tray.close();
    }
  });

  it('the same name from the configured resolver still satisfies the rule (as the same user)', async () => {
    const before = fw.connectionsReceived(80);
    assert.equal(await resolveAndConnect(fw, 'www.bank.example', 2, fw.net.serverV4, uid), CONNECTED);
    assert.equal(fw.connectionsReceived(80), before + 1);
  });
});
