// Which nameservers every program may ask (allow_dns): resolv.conf's, re-read when it changes,
// believed only when root (or systemd-resolved's account) owns the file and its directory and
// no one else may write them.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../service/config.js';
import type { Connection } from '../../service/connection.js';
import { resolvConfOwners } from '../../common/resolvConf.js';
import { Nameservers } from '../../service/nameservers.js';
import { Whitelist } from '../../service/whitelist.js';

const uid = process.getuid!();

describe('Nameservers', () => {
  let dir: string;
  let clock = 0;
  const make = (path: string): Nameservers => new Nameservers({ path, trustedOwners: () => [uid], recheckMs: 1000, now: () => clock });
  beforeEach(() => {
    dir = join(tmpdir(), `bastion-ns-${process.pid}-${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir, { mode: 0o755 });
    clock = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("lists resolv.conf's nameservers, IPv4 and IPv6, without scope or comments", () => {
    writeFileSync(join(dir, 'resolv.conf'), '# x\nnameserver 192.0.2.53\nnameserver 2001:db8::53 ; y\nnameserver fe80::1%eth0\nsearch example\n', {
      mode: 0o644,
    });
    assert.deepEqual(make(join(dir, 'resolv.conf')).list, ['192.0.2.53', '2001:db8::53', 'fe80::1']);
  });

  it("is systemd-resolved's stub alone when resolv.conf names it (the upstreams are the stub's, not every program's)", () => {
    writeFileSync(join(dir, 'stub-resolv.conf'), 'nameserver 127.0.0.53\noptions edns0 trust-ad\n', { mode: 0o644 });
    symlinkSync(join(dir, 'stub-resolv.conf'), join(dir, 'resolv.conf'));
    const ns = make(join(dir, 'resolv.conf'));
    assert.equal(ns.has('127.0.0.53'), true);
    assert.deepEqual(ns.list, ['127.0.0.53']);
  });

  it('is 127.0.0.1 when resolv.conf names none or is missing, as glibc asks then', () => {
    writeFileSync(join(dir, 'resolv.conf'), 'search example\n', { mode: 0o644 });
    assert.deepEqual(make(join(dir, 'resolv.conf')).list, ['127.0.0.1']);
    assert.deepEqual(make(join(dir, 'absent.conf')).list, ['127.0.0.1']);
  });

  it('follows a change at the next check after a second, not before', () => {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, 'nameserver 192.0.2.1\n', { mode: 0o644 });
    const ns = make(path);
    assert.equal(ns.has('192.0.2.1'), true);
    writeFileSync(path, 'nameserver 192.0.2.222\n', { mode: 0o644 });
    clock = 500;
    assert.equal(ns.has('192.0.2.222'), false);
    clock = 1500;
    assert.equal(ns.has('192.0.2.222'), true);
    assert.equal(ns.has('192.0.2.1'), false);
  });

  it('believes no nameserver from a file others may write, or from another owner, or in a directory others may write', () => {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, 'nameserver 192.0.2.1\n');
    chmodSync(path, 0o666);
    const problems: (string | null)[] = [];
    const ns = new Nameservers({ path, trustedOwners: () => [uid], onChange: (_a, p) => problems.push(p) });
    assert.deepEqual(ns.list, []);
    assert.match(problems[0] ?? '', /writable by others: its nameservers are not believed/);
    chmodSync(path, 0o644);
    assert.deepEqual(new Nameservers({ path, trustedOwners: () => [uid + 1] }).list, []);
    chmodSync(dir, 0o777);
    assert.deepEqual(new Nameservers({ path, trustedOwners: () => [uid] }).list, []);
  });

  it("believes systemd-resolved's stub file, which it writes as its own account in a directory of its own", () => {
    // As on a system with systemd-resolved: /etc/resolv.conf links to the stub file under
    // /run/systemd/resolve, both owned by systemd-resolve (here uid 4242, from a passwd of ours).
    const resolvedDir = join(dir, 'resolve');
    mkdirSync(resolvedDir, { mode: 0o755 });
    writeFileSync(join(resolvedDir, 'stub-resolv.conf'), 'nameserver 127.0.0.53\n', { mode: 0o644 });
    chownSync(resolvedDir, 4242, 4242);
    chownSync(join(resolvedDir, 'stub-resolv.conf'), 4242, 4242);
    symlinkSync(join(resolvedDir, 'stub-resolv.conf'), join(dir, 'resolv.conf'));
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nsystemd-resolve:x:4242:4242::/:/usr/sbin/nologin\n');
    assert.deepEqual(resolvConfOwners(passwd), [0, 4242]);
    const path = join(dir, 'resolv.conf');
    assert.deepEqual(new Nameservers({ path, trustedOwners: () => resolvConfOwners(passwd) }).list, ['127.0.0.53']);
    // Without that account, the same files are another user's: not believed.
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\n');
    assert.deepEqual(resolvConfOwners(passwd), [0]);
    assert.deepEqual(new Nameservers({ path, trustedOwners: () => resolvConfOwners(passwd) }).list, []);
  });
});

describe('Whitelist: DNS to the nameservers (allow_dns)', () => {
  const conn = (destIp: string, port: number, protocol: 'UDP' | 'TCP'): Connection =>
    ({
      destIp,
      port,
      protocol,
      exe: '/usr/bin/curl',
      record: { family: 4, dstAddr: new Uint8Array(destIp.split('.').map(Number)), process: null },
    }) as unknown as Connection;
  const whitelist = new Whitelist(() => null, { has: (ip) => ip === '192.0.2.53' });
  const table: [string, Connection, boolean, string | null][] = [
    ['UDP to the nameserver, port 53', conn('192.0.2.53', 53, 'UDP'), true, 'dns'],
    ['TCP to the nameserver, port 53', conn('192.0.2.53', 53, 'TCP'), true, 'dns'],
    ['the nameserver on another port', conn('192.0.2.53', 853, 'TCP'), true, null],
    ['port 53 of another address', conn('192.0.2.54', 53, 'UDP'), true, null],
    ['the nameserver with allow_dns false', conn('192.0.2.53', 53, 'UDP'), false, null],
  ];
  for (const [name, c, allowDns, reason] of table) {
    it(`${name}: ${reason ?? 'not passed'}`, () => {
      assert.equal(whitelist.check(c, { ...DEFAULT_CONFIG, allowDns }), reason);
    });
  }
});
