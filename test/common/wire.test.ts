// The helper <-> service codec: every message kind survives a round trip, and no frame,
// however broken, makes decode throw.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PacketRecord } from '../../common/types.js';
import { decodeBusMessage, encodeBusMessage, MAX_FRAME_BYTES, type BusMessage } from '../../common/wire.js';

const record: PacketRecord = {
  packetId: 4294967295,
  family: 6,
  protocol: 17,
  srcAddr: Uint8Array.from({ length: 16 }, (_, i) => i),
  dstAddr: Uint8Array.from({ length: 16 }, (_, i) => 255 - i),
  srcPort: 40000,
  dstPort: 53,
  icmpType: -1,
  icmpCode: -1,
  inIfindex: 0,
  outIfindex: 3,
  uid: 0,
  gid: 1000,
  malformed: false,
  process: {
    pid: 4242,
    uid: 1000,
    exe: '/opt/tools/sync agent',
    exeDeleted: true,
    comm: 'sync agent',
    cmdline: ['/opt/tools/sync agent', '--flag', ''],
    ppid: 1,
    parentExe: '/usr/lib/systemd/systemd',
    startTime: 2 ** 40 + 7,
    identity: 'exe_mismatch',
    otherMountNs: true,
  },
  socketInode: 123456,
  attribution: 'sock_diag',
  lookupMicros: 37,
  payloadLength: 1500,
};

function roundTrip(m: BusMessage): BusMessage {
  const decoded = decodeBusMessage(encodeBusMessage(m));
  assert.ok(decoded.ok, decoded.ok ? '' : decoded.error);
  return decoded.message;
}

/** Decoded byte fields are Buffers (whose toJSON runs first); compare them as plain bytes. */
function plain(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) => {
      if (v instanceof Uint8Array) return [...v];
      const b = v as { type?: string; data?: number[] } | null;
      return b && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data) ? b.data : v;
    }),
  );
}

describe('bus codec', () => {
  it('round-trips a packet record with every field, uid 0 included', () => {
    const icmp: PacketRecord = {
      ...record,
      packetId: 1,
      family: 4,
      protocol: 1,
      srcAddr: new Uint8Array([198, 18, 0, 1]),
      dstAddr: new Uint8Array([198, 18, 0, 2]),
      srcPort: 0,
      dstPort: 0,
      icmpType: 8,
      icmpCode: 0,
      uid: 0,
      process: null,
      attribution: 'unsupported',
    };
    const m = roundTrip({ kind: 'packets', records: [record, icmp] });
    assert.deepEqual(plain(m), plain({ kind: 'packets', records: [record, icmp] }));
  });

  it('round-trips a grouped report: the verdict the helper applied and how many connections it stands for', () => {
    const report: PacketRecord = { ...record, helperVerdict: 'accept', repeats: 37 };
    const single: PacketRecord = { ...record, packetId: 2, helperVerdict: 'drop' };
    const m = roundTrip({ kind: 'packets', records: [report, single] });
    assert.deepEqual(plain(m), plain({ kind: 'packets', records: [report, single] }));
  });

  it('round-trips what extended rules read of a process: its cwd, app id and running file', () => {
    const rich: PacketRecord = {
      ...record,
      process: { ...record.process!, cwd: '/srv/app', appId: 'org.example.App', exeFile: { dev: 2049, ino: 2 ** 40 + 7 } },
    };
    const m = roundTrip({ kind: 'packets', records: [rich] });
    assert.deepEqual(plain(m), plain({ kind: 'packets', records: [rich] }));
  });

  it("reads a process without an identity (an older helper's record) as unverified, never as the host's", () => {
    const old = encodeBusMessage({ kind: 'packets', records: [{ ...record, process: { ...record.process!, identity: 'unspecified' as 'host' } }] });
    const decoded = decodeBusMessage(old);
    assert.ok(decoded.ok && decoded.message.kind === 'packets');
    assert.equal(decoded.message.records[0]!.process?.identity, 'unverified');
  });

  it('carries the destination host name, and drops one that breaks the host-name grammar', () => {
    const named = roundTrip({
      kind: 'packets',
      records: [
        { ...record, host: 'www.example.org' },
        { ...record, packetId: 3, host: 'bad\u001b[2J.org' },
      ],
    });
    assert.ok(named.kind === 'packets');
    assert.equal(named.records[0]!.host, 'www.example.org');
    assert.equal('host' in named.records[1]!, false);
  });

  it('carries a name from another resolver apart from host, checked the same way, and only where host is absent', () => {
    const m = roundTrip({
      kind: 'packets',
      records: [
        { ...record, unverifiedHost: 'www.bank.example' },
        { ...record, packetId: 3, unverifiedHost: 'bad\u001b[2J.org' },
        { ...record, packetId: 4, host: 'www.example.org', unverifiedHost: 'www.bank.example' },
      ],
    });
    assert.ok(m.kind === 'packets');
    assert.equal(m.records[0]!.unverifiedHost, 'www.bank.example');
    assert.equal('host' in m.records[0]!, false, 'an unverified name never arrives as host');
    assert.equal('unverifiedHost' in m.records[1]!, false);
    assert.equal(m.records[2]!.host, 'www.example.org');
    assert.equal('unverifiedHost' in m.records[2]!, false);
  });

  it('keeps "no uid" (-1) apart from uid 0', () => {
    const m = roundTrip({ kind: 'packets', records: [{ ...record, uid: -1, gid: -1 }] });
    assert.equal(m.kind === 'packets' && m.records[0]!.uid, -1);
  });

  it('round-trips verdicts with and without a mark, and holds', () => {
    const verdicts: BusMessage = {
      kind: 'verdicts',
      verdicts: [
        { packetId: 1, action: 'accept' },
        { packetId: 2, action: 'drop', mark: 0 },
        { packetId: 3, action: 'hold', holdMs: 65000 },
      ],
    };
    assert.deepEqual(roundTrip(verdicts), verdicts);
  });

  it('round-trips hello and heartbeat', () => {
    const hello: BusMessage = {
      kind: 'hello',
      hello: {
        role: 'helper',
        softwareVersion: '0.1.0',
        protocolVersion: 1,
        pid: 7,
        capabilities: ['sock_diag', 'ipv6'],
        queueNum: 1,
        ackDeadlineMs: 1000,
        maxHoldMs: 310000,
      },
    };
    assert.deepEqual(roundTrip(hello), hello);
    const hb: BusMessage = {
      kind: 'heartbeat',
      sentAtMs: Date.now(),
      helper: {
        packets: 10,
        malformed: 1,
        overruns: 0,
        fallbackVerdicts: 2,
        pending: 3,
        badFrames: 4,
        cacheHits: 5,
        fastAnswered: 3,
        kernelDecided: 7,
        kernelReportsLost: 1,
        floodDrops: 2,
        lookupRetries: 3,
        fastByFlow: 2,
      },
    };
    assert.deepEqual(roundTrip(hb), hb);
    assert.deepEqual(roundTrip({ kind: 'heartbeat', sentAtMs: 5, helper: null }), { kind: 'heartbeat', sentAtMs: 5, helper: null });
  });

  it('round-trips path rules for the kernel, port 0 meaning every port', () => {
    const rules: BusMessage = {
      kind: 'path_rules',
      rules: [
        { path: '/usr/bin/curl', port: 80, allow: true },
        { path: '/usr/bin/nc', port: 0, allow: false },
      ],
    };
    assert.deepEqual(roundTrip(rules), rules);
    assert.deepEqual(roundTrip({ kind: 'path_rules', rules: [] }), { kind: 'path_rules', rules: [] });
  });

  it('round-trips connections to end, IPv4 and IPv6', () => {
    const end: BusMessage = {
      kind: 'end_connections',
      flows: [
        { family: 4, protocol: 6, srcAddr: new Uint8Array([192, 0, 2, 1]), srcPort: 40001, dstAddr: new Uint8Array([198, 51, 100, 7]), dstPort: 22 },
        { family: 6, protocol: 6, srcAddr: new Uint8Array(16).fill(1), srcPort: 40002, dstAddr: new Uint8Array(16).fill(2), dstPort: 443 },
      ],
    };
    assert.deepEqual(plain(roundTrip(end)), plain(end));
  });

  it('round-trips a report of a decision taken in the kernel', () => {
    const kernel = { ...record, attribution: 'kernel' as const, helperVerdict: 'drop' as const };
    assert.deepEqual(plain(roundTrip({ kind: 'packets', records: [kernel] })), plain({ kind: 'packets', records: [kernel] }));
  });

  it('round-trips the inbound policy and what the helper made of it', () => {
    for (const enabled of [true, false]) assert.deepEqual(roundTrip({ kind: 'inbound_policy', enabled }), { kind: 'inbound_policy', enabled });
    const inbound = { state: 'other' as const, firewall: 'ufw', detail: 'iptables INPUT policy DROP' };
    assert.deepEqual(roundTrip({ kind: 'inbound_state', inbound }), { kind: 'inbound_state', inbound });
  });

  const refusals: [string, Uint8Array, RegExp][] = [
    ['an empty frame', new Uint8Array(0), /^empty envelope$/],
    ['a truncated varint', new Uint8Array([0x08, 0xff]), /^undecodable frame/],
    ['a wrong wire type', new Uint8Array([0x0f, 0x01]), /^undecodable frame/],
    ['a frame over the size limit', new Uint8Array(MAX_FRAME_BYTES + 1), /exceeds/],
    ['a record without a family', encodeBusMessage({ kind: 'packets', records: [{ ...record, family: 0 as 4 }] }), /without an IP family/],
    ['a record with a 5-byte address', encodeBusMessage({ kind: 'packets', records: [{ ...record, family: 4 }] }), /bad address length/],
    [
      'a path rule with a relative path',
      encodeBusMessage({ kind: 'path_rules', rules: [{ path: 'curl', port: 80, allow: true }] }),
      /^path rule without an absolute path or with a bad port$/,
    ],
    [
      'an inbound state without a state',
      encodeBusMessage({ kind: 'inbound_state', inbound: { state: 'unspecified' as 'off', firewall: '', detail: '' } }),
      /^inbound state without a state$/,
    ],
    [
      'a flow to end with a 4-byte address in IPv6',
      encodeBusMessage({
        kind: 'end_connections',
        flows: [{ family: 6, protocol: 6, srcAddr: new Uint8Array(4), srcPort: 1, dstAddr: new Uint8Array(16), dstPort: 2 }],
      }),
      /^flow with a bad family, address or port$/,
    ],
    [
      'a verdict without an action',
      encodeBusMessage({ kind: 'verdicts', verdicts: [{ packetId: 1, action: 'unspecified' as 'accept' }] }),
      /without an action/,
    ],
  ];
  for (const [name, frame, error] of refusals) {
    it(`refuses ${name} with a clear error`, () => {
      const r = decodeBusMessage(frame);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.error, error);
    });
  }

  it('never throws on random or mutated frames', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const valid = encodeBusMessage({ kind: 'packets', records: [record] });
    for (let i = 0; i < 20000; i++) {
      const frame = i % 2 ? Uint8Array.from({ length: rand(200) }, () => rand(256)) : valid.slice(0, rand(valid.length + 1));
      if (i % 4 === 0) for (let k = 0; k < 3 && frame.length; k++) frame[rand(frame.length)] = rand(256);
      assert.doesNotThrow(() => decodeBusMessage(frame));
    }
  });
});
