// Exact socket lookups through NETLINK_SOCK_DIAG against real sockets of this process.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SockDiag } from '../../helper/identify/sockDiag.js';

const v4 = (text: string): Uint8Array => new Uint8Array(text.split('.').map(Number));
const LO4 = v4('127.0.0.1');
const LO6 = new Uint8Array(16);
LO6[15] = 1;

/** The inodes of this process's sockets, read from /proc: what sock_diag must agree with. */
function ownSocketInodes(): Set<number> {
  const inodes = new Set<number>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  return inodes;
}

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve) => {
    const s = net.createServer((c) => c.on('error', () => undefined)).listen(0, host, () => resolve(s));
  });
}

function connect(port: number, host: string, family?: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const c: net.Socket = net.connect({ port, host, ...(family ? { family } : {}) }, () => resolve(c));
  });
}

describe('sock_diag exact lookup', () => {
  const diag = SockDiag.open();
  const closers: (() => void)[] = [];
  let server4: net.Server;
  let server6: net.Server;

  before(async () => {
    server4 = await listen('127.0.0.1');
    server6 = await listen('::1');
    closers.push(() => server4.close(), () => server6.close());
  });
  after(() => closers.forEach((c) => c()));

  it('opens without error as root', () => assert.ok(diag));

  it('finds a TCP client socket over IPv4 by its 5-tuple', async () => {
    const port = (server4.address() as net.AddressInfo).port;
    const c = await connect(port, '127.0.0.1');
    closers.push(() => c.destroy());
    const found = diag!.lookup(4, 6, LO4, c.localPort!, LO4, port);
    assert.ok(found && found !== 'unavailable');
    assert.equal(found.uid, 0);
    assert.ok(ownSocketInodes().has(found.inode));
  });

  it('finds a TCP client socket over IPv6', async () => {
    const port = (server6.address() as net.AddressInfo).port;
    const c = await connect(port, '::1');
    closers.push(() => c.destroy());
    const found = diag!.lookup(6, 6, LO6, c.localPort!, LO6, port);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('finds a dual-stack IPv6 socket that talks to an IPv4 peer (v4-mapped)', async () => {
    const port = (server4.address() as net.AddressInfo).port;
    const c = await connect(port, '::ffff:127.0.0.1', 6);
    closers.push(() => c.destroy());
    const found = diag!.lookup(4, 6, LO4, c.localPort!, LO4, port);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('finds a connected UDP socket', async () => {
    const s = dgram.createSocket('udp4');
    closers.push(() => s.close());
    await new Promise<void>((r) => s.connect(5353, '127.0.0.1', () => r()));
    const found = diag!.lookup(4, 17, LO4, s.address().port, LO4, 5353);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('finds an unconnected UDP socket bound to a wildcard address by its local port', async () => {
    const s = dgram.createSocket('udp4');
    closers.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '0.0.0.0', () => r()));
    const found = diag!.lookup(4, 17, LO4, s.address().port, v4('198.18.0.9'), 53);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('finds an unconnected UDP socket bound to a specific local address by that address and port', async () => {
    const s = dgram.createSocket('udp4');
    closers.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const found = diag!.lookup(4, 17, LO4, s.address().port, v4('198.18.0.9'), 53);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('finds an unconnected UDP socket over IPv6 by its local port', async () => {
    const s = dgram.createSocket({ type: 'udp6', ipv6Only: true });
    closers.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '::', () => r()));
    const remote = new Uint8Array(16);
    remote.set([0xfd, 0x00, 0x00, 0xb5], 0);
    remote[15] = 2;
    const found = diag!.lookup(6, 17, LO6, s.address().port, remote, 53);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('finds an unconnected dual-stack UDP socket sending to an IPv4 peer (v4-mapped)', async () => {
    const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    closers.push(() => s.close());
    await new Promise<void>((r) => s.bind(0, '::', () => r()));
    const found = diag!.lookup(4, 17, LO4, s.address().port, v4('198.18.0.9'), 53);
    assert.ok(found && found !== 'unavailable' && ownSocketInodes().has(found.inode));
  });

  it('returns null when no socket matches', () => {
    assert.equal(diag!.lookup(4, 6, LO4, 1, LO4, 2), null);
    assert.equal(diag!.lookup(6, 17, LO6, 1, LO6, 2), null);
  });
});
