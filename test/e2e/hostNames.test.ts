// Host names end to end: a tiny DNS server in the server namespace answers a test client's
// query; the helper reads that answer on its way in (never asking anything itself); the client
// then connects to the address it got, and that connection carries the name: @host rules
// (exact and *.suffix) decide it, a different name does not match, and the prompt shows
// "<comm> (<host>)" as the old daemon did.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TestFirewall } from '../support/firewall.js';
import { TrayClient } from '../support/guiTray.js';

// Answers every A query with the server's own address (argv[1]), TTL 60, on argv[1]:53.
const DNS_SERVER = `
import socket, struct, sys
ip = socket.inet_aton(sys.argv[1])
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

function resolveAndConnect(fw: TestFirewall, name: string, timeoutS = 2): Promise<number | null> {
  const child = fw.net.spawn(fw.net.client, 'python3', ['-c', CLIENT, fw.net.serverV4, name, '80', String(timeoutS)]);
  child.stdout?.resume();
  child.stderr?.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function withDns(rules: Record<string, boolean>, fn: (fw: TestFirewall) => Promise<void>): Promise<void> {
  const fw = new TestFirewall({ config: { mode: 'enforcement', default_action: 'deny', timeout_seconds: 60 } });
  // The DNS queries themselves are allowed by address: the names are what is tested.
  writeFileSync(fw.rulesPath, JSON.stringify({ [`@dest:${fw.net.serverV4}:53:*`]: true, ...rules }));
  const dns = fw.net.spawn(fw.net.server, 'python3', ['-c', DNS_SERVER, fw.net.serverV4]);
  dns.stderr?.resume();
  try {
    await fw.start();
    await fn(fw);
  } finally {
    dns.kill('SIGKILL');
    await fw.close();
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
        assert.match(rules, /^-A BASTION-DNS -p udp -m udp --sport 53 -m conntrack --ctstate ESTABLISHED --ctdir REPLY .*-j NFQUEUE --queue-num 2 --queue-bypass$/m);
        assert.match(rules, /^-A BASTION-DNS -p tcp -m tcp --sport 53 -m conntrack --ctstate ESTABLISHED --ctdir REPLY .*-j NFQUEUE --queue-num 2 --queue-bypass$/m);
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
      assert.equal(await resolveAndConnect(fw, 'app.example.test'), NO_ANSWER, 'the filter table\'s INPUT drop applies');
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
