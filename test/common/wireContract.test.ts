// The bus contract: common/generated/bus.ts is what proto/bastion.proto generates now, every
// message type and every enum value crosses the wire codec and comes back, and the bytes are the
// ones the .proto itself describes.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import * as pb from '../../common/generated/bus.js';
import type { Attribution, ExeIdentity, PacketRecord, VerdictAction } from '../../common/types.js';
import { decodeBusMessage, encodeBusMessage, type BusMessage } from '../../common/wire.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const generator = join(repo, 'scripts', 'gen-wire.mjs');
const checkedIn = join(repo, 'common', 'generated', 'bus.ts');
const work = mkdtempSync(join(tmpdir(), 'bastion-gen-wire-'));
after(() => rmSync(work, { recursive: true, force: true }));

const proto = protobuf.loadSync(join(repo, 'proto', 'bastion.proto'));
const protoEnvelope = proto.lookupType('bastion.v1.Envelope');

const record: PacketRecord = {
  packetId: 7,
  family: 4,
  protocol: 6,
  srcAddr: new Uint8Array([10, 0, 0, 1]),
  dstAddr: new Uint8Array([93, 184, 216, 34]),
  srcPort: 40000,
  dstPort: 443,
  icmpType: -1,
  icmpCode: -1,
  inIfindex: 0,
  outIfindex: 2,
  uid: 1000,
  gid: 1000,
  malformed: false,
  process: {
    pid: 4242,
    uid: 1000,
    exe: '/usr/bin/curl',
    exeDeleted: false,
    comm: 'curl',
    cmdline: ['curl', 'https://example.org'],
    ppid: 1,
    parentExe: '/usr/bin/bash',
    startTime: 2 ** 40 + 1,
    identity: 'host',
    otherMountNs: false,
  },
  socketInode: 99,
  attribution: 'sock_diag',
  lookupMicros: 12,
  payloadLength: 60,
  helperVerdict: 'accept',
  repeats: 3,
  host: 'example.org',
};

const attributions: Attribution[] = [
  'sock_diag',
  'proc_net',
  'cache',
  'no_socket',
  'process_gone',
  'shared',
  'not_found',
  'lookup_timeout',
  'caller_unknown',
  'kernel',
  'unsupported',
];
const identities: ExeIdentity[] = ['host', 'other_user_ns', 'exe_mismatch', 'unverified', 'caller_unproven'];
const actions: VerdictAction[] = ['accept', 'drop', 'hold'];

/** One message of each Envelope body, with every enum value the domain has. */
const samples: Record<Exclude<pb.Envelope['body'], undefined>, BusMessage[]> = {
  hello: (['helper', 'service'] as const).map((role) => ({
    kind: 'hello',
    hello: { role, softwareVersion: '0.1.0', protocolVersion: 3, pid: 7, capabilities: ['sock_diag'], queueNum: 1, ackDeadlineMs: 1000, maxHoldMs: 5000 },
  })),
  heartbeat: [
    { kind: 'heartbeat', sentAtMs: 2 ** 41, helper: null },
    {
      kind: 'heartbeat',
      sentAtMs: 5,
      helper: {
        packets: 1,
        malformed: 2,
        overruns: 3,
        fallbackVerdicts: 4,
        pending: 5,
        badFrames: 6,
        cacheHits: 7,
        fastAnswered: 8,
        kernelDecided: 9,
        kernelReportsLost: 10,
        floodDrops: 11,
        lookupRetries: 12,
        fastByFlow: 13,
      },
    },
  ],
  packets: [
    {
      kind: 'packets',
      records: [
        ...attributions.map((attribution, i) => ({ ...record, packetId: i, attribution })),
        ...identities.map((identity, i) => ({ ...record, packetId: 100 + i, process: { ...record.process!, identity } })),
        {
          ...record,
          packetId: 200,
          family: 6 as const,
          protocol: 58,
          srcAddr: new Uint8Array(16).fill(1),
          dstAddr: new Uint8Array(16).fill(2),
          icmpType: 128,
          icmpCode: 0,
          process: null,
        },
      ],
    },
  ],
  verdicts: [
    { kind: 'verdicts', verdicts: actions.map((action, i) => (action === 'hold' ? { packetId: i, action, holdMs: 100 } : { packetId: i, action, mark: 4 })) },
  ],
  cacheReset: [{ kind: 'cache_reset', reason: 'rules changed' }],
  pathRules: [{ kind: 'path_rules', rules: [{ path: '/usr/bin/curl', port: 0, allow: true }] }],
  inboundPolicy: [true, false].map((enabled) => ({ kind: 'inbound_policy', enabled })),
  endConnections: [
    {
      kind: 'end_connections',
      flows: [
        { family: 4, protocol: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), srcPort: 40000, dstAddr: new Uint8Array([192, 0, 2, 7]), dstPort: 443 },
        { family: 6, protocol: 6, srcAddr: new Uint8Array(0), srcPort: 0, dstAddr: new Uint8Array(16).fill(3), dstPort: 80, exe: '/usr/bin/curl' },
      ],
    },
  ],
  inboundState: (['off', 'bastion', 'other', 'error'] as const).map((state) => ({
    kind: 'inbound_state',
    inbound: { state, firewall: 'ufw', detail: 'found' },
  })),
};

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

/** The message types a message reaches through its fields, itself included. */
function reachable(type: protobuf.Type, seen = new Set<string>()): Set<string> {
  seen.add(type.fullName);
  for (const field of type.fieldsArray) {
    const next = field.resolve().resolvedType;
    if (next instanceof protobuf.Type && !seen.has(next.fullName)) reachable(next, seen);
  }
  return seen;
}

function allTypes(ns: protobuf.NamespaceBase, out: protobuf.Type[] = []): protobuf.Type[] {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) out.push(nested);
    if (nested instanceof protobuf.Namespace) allTypes(nested, out);
  }
  return out;
}

describe('the generated bus contract', () => {
  it('common/generated/bus.ts is what proto/bastion.proto generates now', () => {
    const fresh = join(work, 'bus.ts');
    execFileSync(process.execPath, [generator, '--out', fresh]);
    assert.equal(readFileSync(fresh, 'utf8'), readFileSync(checkedIn, 'utf8'), 'stale: run `npm run gen:wire`');
  });

  it('the check fails on a stale file and names the fix', () => {
    const stale = join(work, 'stale.ts');
    writeFileSync(stale, readFileSync(checkedIn, 'utf8').replace('ATTRIBUTION_KERNEL: 83', 'ATTRIBUTION_KERNEL: 84'));
    const r = spawnSync(process.execPath, [generator, '--check', '--out', stale], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is not what proto\/bastion\.proto generates: run `npm run gen:wire` and commit it/);
    const current = spawnSync(process.execPath, [generator, '--check', '--out', checkedIn], { encoding: 'utf8' });
    assert.equal(current.status, 0, current.stderr);
  });

  it('enums carry the proto numbers by name', () => {
    assert.equal(pb.Attribution.ATTRIBUTION_KERNEL, 83);
    assert.equal(pb.ExeIdentity.EXE_IDENTITY_CALLER_UNPROVEN, 5);
    assert.equal(pb.Verdict_Action.ACTION_HOLD, 3);
    assert.equal(pb.Hello_Role.ROLE_SERVICE, 2);
  });

  it('every message type of the proto is carried by some Envelope body', () => {
    const carried = reachable(protoEnvelope);
    assert.deepEqual(
      allTypes(proto)
        .map((t) => t.fullName)
        .filter((name) => !carried.has(name)),
      [],
    );
    assert.deepEqual(Object.keys(samples).sort(), protoEnvelope.oneofs['body']!.fieldsArray.map((f) => f.name).sort());
  });

  for (const [body, messages] of Object.entries(samples)) {
    it(`${body}: round-trips through the codec, in the bytes the .proto describes`, () => {
      for (const m of messages) {
        const bytes = encodeBusMessage(m);
        const decoded = decodeBusMessage(bytes);
        assert.ok(decoded.ok, decoded.ok ? '' : decoded.error);
        assert.deepEqual(plain(decoded.message), plain(m));
        // Read and written again by the codec the .proto itself makes: not a byte changes.
        const byProto = protoEnvelope.decode(bytes);
        assert.equal(protoEnvelope.toObject(byProto, { oneofs: true })['body'], body);
        assert.deepEqual([...protoEnvelope.encode(byProto).finish()], [...bytes]);
      }
    });
  }

  it('every proto enum value but UNSPECIFIED has a domain name, which comes back as the same number', () => {
    // A value added to the proto fails here until common/wire.ts maps it.
    const cases: [string, Record<string, number>, (n: number) => number | undefined][] = [
      [
        'Attribution',
        pb.Attribution,
        (n) => {
          const sent = protoEnvelope.encode({ packets: { records: [{ family: 1, srcAddr: new Uint8Array(4), dstAddr: new Uint8Array(4), attribution: n }] } });
          const got = decodeBusMessage(sent.finish());
          if (!got.ok || got.message.kind !== 'packets') return undefined;
          const back = protoEnvelope.decode(encodeBusMessage(got.message)) as unknown as { packets: { records: { attribution: number }[] } };
          return back.packets.records[0]!.attribution;
        },
      ],
      [
        'ExeIdentity',
        pb.ExeIdentity,
        (n) => {
          const sent = protoEnvelope.encode({
            packets: { records: [{ family: 1, srcAddr: new Uint8Array(4), dstAddr: new Uint8Array(4), process: { identity: n } }] },
          });
          const got = decodeBusMessage(sent.finish());
          if (!got.ok || got.message.kind !== 'packets') return undefined;
          const back = protoEnvelope.decode(encodeBusMessage(got.message)) as unknown as { packets: { records: { process: { identity: number } }[] } };
          return back.packets.records[0]!.process.identity;
        },
      ],
      [
        'Verdict.Action',
        pb.Verdict_Action,
        (n) => {
          const got = decodeBusMessage(protoEnvelope.encode({ verdicts: { verdicts: [{ packetId: 1, action: n }] } }).finish());
          if (!got.ok) return undefined;
          return (protoEnvelope.decode(encodeBusMessage(got.message)) as unknown as { verdicts: { verdicts: { action: number }[] } }).verdicts.verdicts[0]!
            .action;
        },
      ],
      [
        'Hello.Role',
        pb.Hello_Role,
        (n) => {
          const got = decodeBusMessage(protoEnvelope.encode({ hello: { role: n } }).finish());
          if (!got.ok) return undefined;
          return (protoEnvelope.decode(encodeBusMessage(got.message)) as unknown as { hello: { role: number } }).hello.role;
        },
      ],
    ];
    for (const [name, values, roundTrip] of cases) {
      for (const [key, n] of Object.entries(values)) {
        if (key.endsWith('_UNSPECIFIED')) continue;
        assert.equal(roundTrip(n), n, `${name}.${key} (${n})`);
      }
    }
  });
});
