// Host/IP lists (lists.d): the line formats, what an entry matches, bad lines counted and
// skipped, and check-config failing on them.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkConfigFiles } from '../../cli/checkConfigCommand.js';
import { parseAddress } from '../../common/cidr.js';
import { HostLists, parseList } from '../../service/lists/hostLists.js';

const addr = (text: string): Uint8Array => parseAddress(text)!;

describe('a host/IP list', () => {
  const text = [
    '# a comment',
    '0.0.0.0 ads.example.com tracker.test # trailing comment',
    '127.0.0.1 localhost',
    '::1 ip6-localhost',
    'Evil.ORG.',
    '*.wild.test',
    '192.0.2.7',
    '10.0.0.0/8',
    '2001:db8::/33',
    '',
    'bad name',
    '1.2.3.4 redirected.example',
    'not_a_host!',
    '10.0.0.0/40',
  ].join('\n');

  it('reads hosts-file lines, plain names, addresses and blocks; counts every other line', async () => {
    const list = await parseList(text);
    assert.deepEqual(list.stats, {
      names: 4,
      addresses: 3,
      badLines: 4,
      badSamples: ['11: bad name', '12: 1.2.3.4 redirected.example', '13: not_a_host!', '14: 10.0.0.0/40'],
    });
  });

  it('a name matches itself and every name below it, not its parent or a look-alike', async () => {
    const list = await parseList(text);
    const cases: [string, boolean][] = [
      ['ads.example.com', true],
      ['a.b.ads.example.com', true],
      ['example.com', false],
      ['badads.example.com', false],
      ['evil.org', true],
      ['x.wild.test', true],
      ['wild.test', true],
      ['localhost', false],
    ];
    for (const [name, listed] of cases) assert.equal(list.hasName(name), listed, name);
  });

  it('an address matches itself; a block every address in it, IPv4 and IPv6 apart', async () => {
    const list = await parseList(text);
    const cases: [string, boolean][] = [
      ['192.0.2.7', true],
      ['192.0.2.8', false],
      ['10.255.1.2', true],
      ['11.0.0.1', false],
      ['2001:db8:7fff::1', true],
      ['2001:db8:8000::1', false],
      ['::ffff:192.0.2.7', false],
    ];
    for (const [a, listed] of cases) assert.equal(list.hasAddress(addr(a)), listed, a);
  });
});

describe('lists.d', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-lists-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names each list after its file, skips what it cannot read, and check-config exits 1 on bad lines', async () => {
    const listsDir = join(dir, 'lists.d');
    mkdirSync(listsDir);
    writeFileSync(join(listsDir, 'ads.list'), '0.0.0.0 ads.example.com\n');
    writeFileSync(join(listsDir, 'ips.txt'), '192.0.2.0/24\n');
    const lists = new HostLists({ dir: listsDir });
    const loaded = await lists.load();
    assert.deepEqual(loaded.errors, []);
    assert.equal(lists.contains('ads', addr('198.51.100.1'), 'x.ads.example.com'), true);
    assert.equal(lists.contains('ads', addr('198.51.100.1'), 'example.com'), false);
    assert.equal(lists.contains('ips', addr('192.0.2.9'), undefined), true);
    assert.equal(lists.contains('nope', addr('192.0.2.9'), undefined), false);
    assert.deepEqual(await checkConfigFiles({ listsDir }), { ok: true, lines: [`${listsDir}: ads (1 entries), ips (1 entries)`] });

    writeFileSync(join(listsDir, 'ads.list'), '0.0.0.0 ads.example.com\nnot a line\n');
    const report = await checkConfigFiles({ listsDir });
    assert.deepEqual(report, {
      ok: false,
      lines: [`error: ${listsDir}/ads.list: 1 bad lines skipped (line 2: not a line)`, `${listsDir}: ads (1 entries), ips (1 entries)`],
    });
  });

  it('check-config names a rule whose list lists.d does not have', async () => {
    const rulesDir = join(dir, 'rules.d');
    mkdirSync(rulesDir);
    writeFileSync(join(rulesDir, 'a.json'), JSON.stringify([{ action: 'deny', list: 'trackers' }]));
    const report = await checkConfigFiles({ rulesDir, listsDir: join(dir, 'lists.d') });
    assert.equal(report.ok, false);
    assert.equal(report.lines[0], `error: ${rulesDir}/a.json#1: list "trackers" is not in lists.d; the rule matches nothing`);
  });
});
