// Every program's own DNS query to the configured nameserver passes in enforcement with no rules
// (allow_dns, service/nameservers.ts): glibc resolves inside each program, so without this
// getent, curl, git and apt wait out their resolver timeouts. Only the nameservers the service's
// resolv.conf names, only port 53: the same query to another address is denied, and with
// allow_dns off so is the nameserver's.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { tempDir } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';

/** Answers every A question with 198.18.0.99 (AAAA: no records) over UDP and TCP port 53; prints `<proto> <remote address>` per query. */
const DNS_SERVER = `
import socket, struct, sys, threading
def answer(q):
    qend = 12
    while q[qend] != 0: qend += 1 + q[qend]
    qend += 5
    qtype = struct.unpack('>H', q[qend-4:qend-2])[0]
    records = b'\\xc0\\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([198, 18, 0, 99]) if qtype == 1 else b''
    return q[:2] + struct.pack('>HHHHH', 0x8180, 1, 1 if records else 0, 0, 0) + q[12:qend] + records
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::', 53))
    while True:
        q, peer = s.recvfrom(4096); print('udp', peer[0], flush=True); s.sendto(answer(q), peer)
def tcp_client(c, peer):
    with c:
        n = struct.unpack('>H', c.recv(2))[0]; q = c.recv(n); print('tcp', peer[0], flush=True)
        a = answer(q); c.sendall(struct.pack('>H', len(a)) + a)
def tcp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', 53)); s.listen(16)
    while True:
        c, peer = s.accept(); threading.Thread(target=tcp_client, args=(c, peer), daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
tcp()
`;

/** One A query for svc.bastion.test over udp or tcp to argv[1]:53; prints `answer|refused|timeout|error N` and the ms it took. */
const DNS_CLIENT = `
import socket, struct, sys, time
host, proto = sys.argv[1], sys.argv[2]
q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(p)]) + p.encode() for p in 'svc.bastion.test'.split('.')) + b'\\0' + struct.pack('>HH', 1, 1)
family = socket.AF_INET6 if ':' in host else socket.AF_INET
t = time.monotonic()
try:
    if proto == 'udp':
        s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(3); s.connect((host, 53)); s.send(q); r = s.recv(4096)
    else:
        s = socket.create_connection((host, 53), timeout=3); s.sendall(struct.pack('>H', len(q)) + q); r = s.recv(4096)[2:]
    out = 'answer' if r[:2] == b'\\x12\\x34' else 'garbage'
except ConnectionRefusedError:
    out = 'refused'
except (socket.timeout, TimeoutError):
    out = 'timeout'
except OSError as e:
    out = 'error %d' % e.errno
print(out, round((time.monotonic() - t) * 1000, 1))
`;

describe('DNS to the configured nameserver in enforcement (allow_dns)', () => {
  const files = tempDir('bastion-dns-');
  const resolvConf = `${files.path}/resolv.conf`;
  let fw: TestFirewall;
  let netnsEtc = '';
  let dnsLog = '';
  let server: ChildProcess | null = null;

  before(async () => {
    fw = new TestFirewall({
      config: { mode: 'enforcement', default_action: 'deny', log_decisions: true },
      daemonArgs: ['--resolv-conf', resolvConf],
    });
    // The service's resolv.conf: only the server's IPv4 address is a nameserver.
    writeFileSync(resolvConf, `# test\nnameserver ${fw.net.serverV4}\noptions timeout:2 attempts:1\n`);
    // What glibc reads in the client namespace (ip netns exec mounts /etc/netns/<ns>/resolv.conf).
    netnsEtc = `/etc/netns/${fw.net.client}`;
    mkdirSync(netnsEtc, { recursive: true });
    writeFileSync(`${netnsEtc}/resolv.conf`, `nameserver ${fw.net.serverV4}\noptions timeout:2 attempts:1\n`);
    server = fw.net.spawn(fw.net.server, 'python3', ['-c', DNS_SERVER]);
    server.stdout?.setEncoding('utf8').on('data', (d: string) => (dnsLog += d));
    server.stderr?.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`dns server: ${d}`));
    await fw.start();
  });
  after(async () => {
    server?.kill('SIGKILL');
    await fw?.close();
    if (netnsEtc !== '') rmSync(netnsEtc, { recursive: true, force: true });
    files.remove();
  });

  const query = async (host: string, proto: 'udp' | 'tcp'): Promise<{ result: string; ms: number }> => {
    const r = await fw.net.runAsync(fw.net.client, 'python3', ['-c', DNS_CLIENT, host, proto], 15_000);
    const [result, ms] = r.stdout.trim().split(' ');
    return { result: result ?? `no output: ${r.stderr}`, ms: Number(ms) };
  };
  const queriesFrom = (proto: string, client: string): number =>
    dnsLog.split('\n').filter((l) => l === `${proto} ${client}` || l === `${proto} ::ffff:${client}`).length;

  it("answers getent's lookup at once, with no rule (glibc in the program asks the nameserver)", async (t: TestContext) => {
    const start = performance.now();
    const r = await fw.net.runAsync(fw.net.client, 'getent', ['hosts', 'svc.bastion.test'], 30_000);
    t.diagnostic(`getent hosts: ${(performance.now() - start).toFixed(0)} ms (includes ip netns exec)`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^198\.18\.0\.99\s+svc\.bastion\.test/);
  });

  it('passes UDP and TCP queries to the nameserver, decided as dns (journal and counters)', async (t: TestContext) => {
    for (const proto of ['udp', 'tcp'] as const) {
      const r = await query(fw.net.serverV4, proto);
      t.diagnostic(`${proto} query to the nameserver: ${r.result} in ${r.ms} ms`);
      assert.equal(r.result, 'answer', `server saw: ${dnsLog}`);
    }
    assert.ok(queriesFrom('tcp', fw.net.clientV4) >= 1);
    const decided = fw.daemon!.lines.filter((l) => l.msg === 'allowed' && l['reason'] === 'dns' && l['destIp'] === fw.net.serverV4);
    assert.ok(decided.length >= 2, `dns decisions: ${decided.length}`);
    assert.equal(
      decided.every((l) => l['ruleKey'] === null && l['port'] === 53),
      true,
    );
    const status = await fw.status();
    assert.deepEqual(status['dns'], { allowed: true, nameservers: [fw.net.serverV4] });
  });

  it('denies the same query to an address that is not a nameserver', async () => {
    const before = queriesFrom('udp', fw.net.clientV6) + queriesFrom('tcp', fw.net.clientV6);
    for (const proto of ['udp', 'tcp'] as const) {
      const r = await query(fw.net.serverV6, proto);
      assert.equal(r.result, 'refused', `${proto} to ${fw.net.serverV6}`);
    }
    assert.equal(queriesFrom('udp', fw.net.clientV6) + queriesFrom('tcp', fw.net.clientV6), before);
  });

  it('denies the nameserver too once allow_dns is set to false', async () => {
    const conn = await GuiConnection.connect(fw.guiSocket);
    try {
      await conn.request({ type: 'set_config', key: 'allow_dns', value: false }, 'config_changed');
    } finally {
      conn.close();
    }
    const udpBefore = queriesFrom('udp', fw.net.clientV4);
    for (const proto of ['udp', 'tcp'] as const) {
      const r = await query(fw.net.serverV4, proto);
      assert.equal(r.result, 'refused', proto);
    }
    assert.equal(queriesFrom('udp', fw.net.clientV4), udpBefore);
    const status = await fw.status();
    assert.deepEqual(status['dns'], { allowed: false, nameservers: [] });
  });
});
