// systemd's notification protocol for both units (Type=notify, WatchdogSec=): READY=1 once a
// process really serves, WATCHDOG=1 at half the watchdog interval, RELOADING=1/READY=1 around
// a SIGHUP reload, STOPPING=1 on the way out. Outside systemd ($NOTIFY_SOCKET unset) every
// call does nothing. The datagram is sent by our addon from our own pid (see
// native/src/sd_notify.c for why not `systemd-notify`).
import type { Logger } from '../common/log.js';
import { loadNative } from '../common/native.js';

export type NotifySend = (socketPath: string, state: string) => number;

export interface SystemdNotifier {
  /** READY=1 with a one-line status; starts the watchdog pings when the unit has a watchdog. */
  ready(status: string): void;
  reloading(): void;
  stopping(): void;
  /** Stops the watchdog pings (the process is about to exit). */
  close(): void;
}

/** process.env, or a test's own: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read. */
export type NotifyEnvironment = Record<string, string | undefined>;

const NOOP: SystemdNotifier = { ready: () => {}, reloading: () => {}, stopping: () => {}, close: () => {} };

/**
 * The notifier for this process. Takes NOTIFY_SOCKET and the watchdog variables out of
 * `env` (sd_notify's unset_environment): the programs we spawn (iptables, pkcheck) must
 * not notify on our behalf.
 */
export function systemdNotifierFromEnv(
  log: Logger,
  env: NotifyEnvironment = process.env,
  send: NotifySend = (socketPath, state) => loadNative().sdNotify(socketPath, state),
  pid: number = process.pid,
): SystemdNotifier {
  const socketPath = env['NOTIFY_SOCKET'];
  const watchdogUsec = Number(env['WATCHDOG_USEC']);
  const watchdogPid = env['WATCHDOG_PID'];
  for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[name];
  if (!socketPath) return NOOP;
  // A watchdog meant for another process (WATCHDOG_PID) is not ours to feed.
  const watchdogMs = Number.isFinite(watchdogUsec) && watchdogUsec > 0 && (watchdogPid === undefined || Number(watchdogPid) === pid) ? watchdogUsec / 1000 : 0;

  let warned = false;
  const notify = (state: string): void => {
    const rc = send(socketPath, state);
    if (rc < 0 && !warned) {
      warned = true; // once: a broken socket would otherwise log at every watchdog ping
      log.warn({ socket: socketPath, errno: -rc, state }, 'systemd notification not delivered');
    }
  };
  let timer: NodeJS.Timeout | null = null;
  const close = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  return {
    ready(status) {
      notify(`READY=1\nSTATUS=${oneLine(status)}\nMAINPID=${pid}`);
      if (watchdogMs > 0 && !timer) {
        // Half the interval, as sd_watchdog_enabled(3) advises; unref'd so it never keeps us alive.
        timer = setInterval(() => notify('WATCHDOG=1'), Math.max(1, Math.floor(watchdogMs / 2)));
        timer.unref();
      }
    },
    reloading() {
      notify('RELOADING=1\nSTATUS=reloading');
    },
    stopping() {
      close();
      notify('STOPPING=1\nSTATUS=stopping');
    },
    close,
  };
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
