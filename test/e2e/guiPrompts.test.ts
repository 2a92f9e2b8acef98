// Prompts end to end: the real helper on NFQUEUE in a network namespace, the real service, and
// GUI clients on its real Unix socket behaving like the Python tray. A prompt holds only the
// connections it is about: everything else is decided at once.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { TestFirewall } from '../support/firewall.js';
import { copyPrograms, fetchFrom, percentile, type FetchResult } from '../support/guiPrograms.js';
import { TrayClient } from '../support/guiTray.js';

interface Setup {
  config: Record<string, unknown>;
  programs: string[];
  rules?: (paths: Record<string, string>) => Record<string, boolean>;
}

/** A started firewall with copies of curl named `programs`, and rules that may name them. */
async function withPrompts(setup: Setup, fn: (fw: TestFirewall, exe: Record<string, string>) => Promise<void>): Promise<void> {
  const fw = new TestFirewall({ config: setup.config });
  try {
    const exe = copyPrograms(fw, setup.programs);
    if (setup.rules) writeFileSync(fw.rulesPath, JSON.stringify(setup.rules(exe), null, 2));
    await fw.start();
    await fn(fw, exe);
  } finally {
    await fw.close();
  }
}

function rulesFile(fw: TestFirewall): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(fw.rulesPath, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

const ms = (v: number): string => `${v.toFixed(2)} ms`;

describe('prompts in enforcement mode', () => {
  it('two prompts for different programs are answered independently; a third program with a rule is decided at once meanwhile', async (t: TestContext) => {
    await withPrompts(
      { config: { mode: 'enforcement', timeout_seconds: 60 }, programs: ['curl-a', 'curl-b', 'curl-c'], rules: (p) => ({ [`${p['curl-c']}:80`]: true }) },
      async (fw, exe) => {
        const tray = await TrayClient.connect(fw.guiSocket);
        // Warm up (neighbour discovery, the helper's process caches), then measure with no prompt open.
        for (let i = 0; i < 5; i++) assert.equal((await fetchFrom(fw, exe['curl-c']!, 5)).code, 0);
        const baseline: number[] = [];
        for (let i = 0; i < 20; i++) {
          const r = await fetchFrom(fw, exe['curl-c']!, 5);
          assert.equal(r.code, 0);
          baseline.push(r.connectMs);
        }

        const a = fetchFrom(fw, exe['curl-a']!, 30);
        const b = fetchFrom(fw, exe['curl-b']!, 5);
        const reqA = await tray.nextRequest('curl-a');
        const reqB = await tray.nextRequest('curl-b');
        assert.deepEqual(Object.keys(reqA), [
          'type',
          'request_id',
          'app_name',
          'app_path',
          'app_category',
          'dest_ip',
          'dest_port',
          'protocol',
          'learning_mode',
        ]);
        assert.deepEqual(
          { ...reqA, request_id: null },
          {
            type: 'connection_request',
            request_id: null,
            app_name: 'curl-a',
            app_path: exe['curl-a'],
            app_category: 'unknown',
            dest_ip: fw.net.serverV4,
            dest_port: 80,
            protocol: 'TCP',
            learning_mode: false,
          },
        );
        assert.match(String(reqA['request_id']), /^curl-a-[0-9a-f]+$/);

        // Both prompts are open: the third program's connections must not wait for them.
        const during: FetchResult[] = [];
        for (let i = 0; i < 20; i++) during.push(await fetchFrom(fw, exe['curl-c']!, 5));
        assert.deepEqual(
          during.map((r) => r.code),
          during.map(() => 0),
        );
        const latencies = during.map((r) => r.connectMs);
        assert.ok(percentile(latencies, 50) < 50, `p50 ${ms(percentile(latencies, 50))} while prompts were open`);
        assert.ok(Math.max(...latencies) < 900, 'a connection waited for a SYN retry');
        assert.equal(tray.ofType('connection_request').length, 2, 'the program with a rule was asked about');

        tray.answer(reqB, { allow: false, duration: 'once' });
        assert.equal((await b).code, 7, 'curl-b was not blocked');
        assert.equal(tray.ofType('connection_request').length, 2, 'a SYN retry of the denied connection opened a new prompt');
        assert.deepEqual(tray.ofType('cancel_popup'), [], 'answering B closed A');
        tray.answer(reqA, { allow: true, duration: 'once' });
        const fetchedA = await a;
        assert.equal(fetchedA.code, 0);

        // Once more with no prompt open, so the order of measuring cannot pass for an effect.
        const afterwards: number[] = [];
        for (let i = 0; i < 20; i++) afterwards.push((await fetchFrom(fw, exe['curl-c']!, 5)).connectMs);
        const stats = (v: number[]): Record<string, string> => ({ p50: ms(percentile(v, 50)), p90: ms(percentile(v, 90)), max: ms(Math.max(...v)) });
        t.diagnostic(
          `third program's connect latency, decided by its rule (20 connects each): ${JSON.stringify({
            no_prompt_open_before: stats(baseline),
            while_two_prompts_open: stats(latencies),
            no_prompt_open_after: stats(afterwards),
          })}`,
        );
        const counters = await fw.counters();
        assert.equal(counters.blocked_connections, 1);
        assert.equal(counters.allowed_connections, 66);
        await tray.close();
      },
    );
  });

  it('connections with the same key wait for one answer; an unknown request_id changes nothing', async () => {
    await withPrompts({ config: { mode: 'enforcement', timeout_seconds: 60 }, programs: ['curl-a'] }, async (fw, exe) => {
      const tray = await TrayClient.connect(fw.guiSocket);
      const first = fetchFrom(fw, exe['curl-a']!, 20);
      const req = await tray.nextRequest('curl-a');
      const second = fetchFrom(fw, exe['curl-a']!, 20);
      await fw.daemon!.waitFor('prompt opened');
      // The second connection joins the first prompt instead of opening one.
      tray.writeLine({ type: 'gui_response', request_id: 'curl-a-6790a1b21a2b3c', allow: false, permanent: true, all_ports: true, duration: 'always' });
      tray.writeLine({ type: 'list_rules' });
      const list = await tray.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
      assert.deepEqual(list['rules'], { applications: {}, services: {} });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fw.daemon!.count('prompt opened'), 1, 'a second prompt for the same key');
      tray.answer(req, { allow: true, duration: 'once' });
      const [r1, r2] = await Promise.all([first, second]);
      assert.deepEqual([r1.code, r2.code], [0, 0]);
      assert.equal(tray.ofType('connection_request').length, 1);
      assert.deepEqual(tray.ofType('error'), []);
      await tray.close();
    });
  });

  it('every client is asked; the first answer wins, the others get cancel_popup and their late answers change nothing', async () => {
    await withPrompts({ config: { mode: 'enforcement', timeout_seconds: 60 }, programs: ['curl-a'] }, async (fw, exe) => {
      const trays = await Promise.all([1, 2, 3].map(() => TrayClient.connect(fw.guiSocket)));
      const fetch = fetchFrom(fw, exe['curl-a']!, 20);
      const reqs = await Promise.all(trays.map((tr) => tr.nextRequest('curl-a')));
      assert.equal(new Set(reqs.map((r) => r['request_id'])).size, 1, 'clients got different request ids');
      trays[1]!.answer(reqs[1]!, { allow: true, duration: 'always', allPorts: true });
      await trays[0]!.cancelled(reqs[0]!['request_id'] as string);
      await trays[2]!.cancelled(reqs[2]!['request_id'] as string);
      trays[0]!.answer(reqs[0]!, { allow: false, duration: 'always' });
      assert.equal((await fetch).code, 0);
      trays[1]!.writeLine({ type: 'list_rules' });
      const list = await trays[1]!.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
      assert.deepEqual(list['rules'], { [`${exe['curl-a']}:*`]: true, applications: {}, services: {} });
      assert.equal(rulesFile(fw)[`${exe['curl-a']}:*`], true);
      assert.deepEqual(trays[1]!.ofType('cancel_popup'), []);
      // Now the rule decides: no prompt, on any port.
      assert.equal((await fetchFrom(fw, exe['curl-a']!, 5)).code, 0);
      assert.equal(trays[0]!.ofType('connection_request').length, 1);
      await Promise.all(trays.map((tr) => tr.close()));
    });
  });
});

describe('a program flooding new ports', () => {
  it('gets at most 4 prompts, the rest of its new ports the default at once; another program is still asked', async () => {
    await withPrompts({ config: { mode: 'enforcement', timeout_seconds: 60 }, programs: ['curl-a', 'curl-b'] }, async (fw, exe) => {
      const tray = await TrayClient.connect(fw.guiSocket);
      // One process, 40 new ports at once (closed ports: nothing would answer them anyway).
      const urls = Array.from({ length: 40 }, (_, i) => `http://${fw.net.serverV4}:${2001 + i}/`);
      const flood = fw.net.spawn(fw.net.client, exe['curl-a']!, ['-s', '-o', '/dev/null', '-m', '8', '--parallel', '--parallel-max', '40', ...urls]);
      try {
        await tray.nextRequest('curl-a');
        await fw.daemon!.waitFor('too many open prompts');
        // The flood's SYN retries (after 1 s) must not open more prompts either.
        await new Promise((r) => setTimeout(r, 1500));
        const b = fetchFrom(fw, exe['curl-b']!, 20);
        const reqB = await tray.nextRequest('curl-b');
        tray.answer(reqB, { allow: true, duration: 'once' });
        assert.equal((await b).code, 0, 'curl-b was not let through');
        const asked = tray.ofType('connection_request');
        assert.equal(asked.filter((m) => m['app_name'] === 'curl-a').length, 4);
        assert.deepEqual(
          asked.filter((m) => m['app_name'] === 'curl-b').map((m) => m['dest_port']),
          [80],
        );
        // The user is told once, not once per dropped port.
        assert.deepEqual(
          tray.ofType('notification').map((m) => [m['title'], m['level']]),
          [['Too many questions at once', 'warning']],
        );
      } finally {
        flood.kill('SIGKILL');
        await tray.close();
      }
    });
  });
});

describe('timeouts and clients that leave', () => {
  it('at timeout_seconds the default applies and the popups close; an answer after that changes nothing', async () => {
    await withPrompts({ config: { mode: 'enforcement', timeout_seconds: 5 }, programs: ['curl-a'] }, async (fw, exe) => {
      const tray = await TrayClient.connect(fw.guiSocket);
      const fetch = fetchFrom(fw, exe['curl-a']!, 7);
      const req = await tray.nextRequest('curl-a');
      const opened = performance.now();
      await tray.cancelled(req['request_id'] as string, 9000);
      const waited = performance.now() - opened;
      assert.ok(waited > 4500 && waited < 6500, `timed out after ${Math.round(waited)} ms`);
      tray.answer(req, { allow: true, duration: 'always', allPorts: true });
      tray.writeLine({ type: 'list_rules' });
      const list = await tray.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
      assert.deepEqual(list['rules'], { applications: {}, services: {} });
      assert.equal((await fetch).code, 7, 'default deny did not apply');
      const counters = await fw.counters();
      assert.deepEqual(counters, { total_connections: 1, allowed_connections: 0, blocked_connections: 1 });
      // No session either: the next connection is asked about again.
      const again = fetchFrom(fw, exe['curl-a']!, 9);
      const req2 = await tray.nextRequest('curl-a');
      tray.answer(req2, { allow: true, duration: 'once' });
      assert.equal((await again).code, 0);
      await tray.close();
    });
  });

  it('a prompt stays open on the other clients when one leaves, and gets the default at once when the last one does', async () => {
    await withPrompts({ config: { mode: 'enforcement', timeout_seconds: 60 }, programs: ['curl-a', 'curl-b'] }, async (fw, exe) => {
      const [leaving, staying] = await Promise.all([TrayClient.connect(fw.guiSocket), TrayClient.connect(fw.guiSocket)]);
      const a = fetchFrom(fw, exe['curl-a']!, 20);
      await leaving.nextRequest('curl-a');
      const req = await staying.nextRequest('curl-a');
      await leaving.close();
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(staying.ofType('cancel_popup'), []);
      staying.answer(req, { allow: true, duration: 'once' });
      assert.equal((await a).code, 0);

      const b = fetchFrom(fw, exe['curl-b']!, 4);
      await staying.nextRequest('curl-b');
      await staying.close();
      await fw.daemon!.waitFor('no client left to answer');
      // Nothing stays held in the helper: its heartbeat reports no pending packet.
      assert.equal((await fw.helperCounters((c) => c.pending === 0)).pending, 0, 'the helper still holds packets');
      assert.equal((await b).code, 7, 'default deny did not apply');
      assert.equal((await fw.counters()).blocked_connections, 1);
    });
  });
});

describe('learning mode', () => {
  it('the tray is told with learning_mode true, nothing waits, and its "Always" add_rule is saved', async () => {
    await withPrompts({ config: { mode: 'learning' }, programs: ['curl-a'] }, async (fw, exe) => {
      const tray = await TrayClient.connect(fw.guiSocket);
      const fetched = await fetchFrom(fw, exe['curl-a']!, 5);
      assert.equal(fetched.code, 0);
      assert.ok(fetched.connectMs < 500, `learning mode waited ${ms(fetched.connectMs)}`);
      const req = await tray.nextRequest('curl-a');
      assert.equal(req['learning_mode'], true);
      tray.answer(req, { allow: true, duration: 'always' });
      tray.writeLine({ type: 'list_rules' });
      const list = await tray.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
      assert.equal((list['rules'] as Record<string, unknown>)[`${exe['curl-a']}:80`], true);
      assert.equal(rulesFile(fw)[`${exe['curl-a']}:80`], true);
      assert.deepEqual(tray.ofType('error'), []);
      await tray.close();
    });
  });
});
