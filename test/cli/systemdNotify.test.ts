// The sd_notify protocol as both units use it: what is sent when, and that the addon really
// delivers a datagram to a path and to an abstract socket.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { systemdNotifierFromEnv, type NotifyEnvironment } from '../../cli/systemdNotify.js';
import { loadNative } from '../../common/native.js';
import type { Logger } from '../../common/log.js';

function recorder(rc = 0): { sent: string[]; send: (socket: string, state: string) => number } {
  const sent: string[] = [];
  return { sent, send: (_socket, state) => (sent.push(state), rc) };
}

function quietLog(warnings: unknown[] = []): Logger {
  return { warn: (...args: unknown[]) => warnings.push(args) } as unknown as Logger;
}

describe('systemd notifications', () => {
  it('send nothing outside systemd (no NOTIFY_SOCKET)', () => {
    const r = recorder();
    const n = systemdNotifierFromEnv(quietLog(), {}, r.send, 100);
    n.ready('up');
    n.reloading();
    n.stopping();
    assert.deepEqual(r.sent, []);
  });

  it('say READY with a one-line status and our pid, and take the variables out of the environment', () => {
    const r = recorder();
    const env: NotifyEnvironment = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '0', OTHER: 'x' };
    const n = systemdNotifierFromEnv(quietLog(), env, r.send, 100);
    n.ready('queue 1 bound\nserving');
    n.reloading();
    n.stopping();
    assert.deepEqual(r.sent, ['READY=1\nSTATUS=queue 1 bound serving\nMAINPID=100', 'RELOADING=1\nSTATUS=reloading', 'STOPPING=1\nSTATUS=stopping']);
    assert.deepEqual(env, { OTHER: 'x' });
  });

  it('ping the watchdog at half its interval from READY until STOPPING', async () => {
    const r = recorder();
    const n = systemdNotifierFromEnv(quietLog(), { NOTIFY_SOCKET: '@sd', WATCHDOG_USEC: '100000', WATCHDOG_PID: '100' }, r.send, 100);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.deepEqual(r.sent, [], 'no ping before READY');
    n.ready('up');
    await new Promise((resolve) => setTimeout(resolve, 180));
    n.stopping();
    const pings = r.sent.filter((s) => s === 'WATCHDOG=1').length;
    assert.ok(pings >= 2 && pings <= 5, `${pings} pings in 180 ms at a 50 ms period`);
    const after = r.sent.length;
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(r.sent.length, after, 'pings after STOPPING');
  });

  it("leave another process's watchdog alone (WATCHDOG_PID)", async () => {
    const r = recorder();
    const n = systemdNotifierFromEnv(quietLog(), { NOTIFY_SOCKET: '@sd', WATCHDOG_USEC: '20000', WATCHDOG_PID: '7' }, r.send, 100);
    n.ready('up');
    await new Promise((resolve) => setTimeout(resolve, 60));
    n.close();
    assert.deepEqual(r.sent, ['READY=1\nSTATUS=up\nMAINPID=100']);
  });

  it('warn once when a notification cannot be delivered', () => {
    const warnings: unknown[] = [];
    const n = systemdNotifierFromEnv(quietLog(warnings), { NOTIFY_SOCKET: '/nowhere' }, recorder(-111).send, 100);
    n.ready('up');
    n.reloading();
    assert.equal(warnings.length, 1);
  });
});

/** Receives datagrams on `address` (a path, or "@name") with Python, which has AF_UNIX SOCK_DGRAM. */
function receive(address: string, count: number): { ready: Promise<void>; got: Promise<string[]> } {
  const py = `
import socket, sys, json
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + a[1:] if a.startswith('@') else a)
s.settimeout(10)
print('ready', flush=True)
print(json.dumps([s.recv(4096).decode() for _ in range(int(sys.argv[2]))]), flush=True)
`;
  const child = spawn('/usr/bin/python3', ['-c', py, address, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let onReady: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const got = new Promise<string[]>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) onReady();
    });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.slice('ready\n'.length)) as string[]) : reject(new Error(`receiver exited ${code}`))));
  });
  return { ready, got };
}

describe('the addon sdNotify', () => {
  it('delivers one datagram to a socket path and to an abstract socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bastion-notify-'));
    try {
      for (const address of [join(dir, 'notify'), `@bastion-test-${randomBytes(4).toString('hex')}`]) {
        const r = receive(address, 2);
        await r.ready;
        assert.equal(loadNative().sdNotify(address, 'READY=1\nSTATUS=up'), 0);
        assert.equal(loadNative().sdNotify(address, 'WATCHDOG=1'), 0);
        assert.deepEqual(await r.got, ['READY=1\nSTATUS=up', 'WATCHDOG=1']);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers -errno for a socket that is not there or an address that is no socket address', () => {
    assert.equal(loadNative().sdNotify('/nonexistent/notify', 'READY=1'), -2); // ENOENT
    assert.equal(loadNative().sdNotify('relative', 'READY=1'), -22); // EINVAL
  });
});
