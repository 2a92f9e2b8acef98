// Shared plumbing of the foreground commands: start, then stop cleanly on SIGINT/SIGTERM.
import { InvalidArgumentError } from 'commander';
import type { Logger } from '../common/log.js';

export function intOption(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

export async function runUntilSignal(log: Logger, start: () => Promise<void>, stop: () => Promise<void>, onHangup?: () => void): Promise<void> {
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGHUP', () => onHangup?.());
  // A bug in an async path is logged, never a crash that would strand held packets.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  try {
    await start();
  } catch (err) {
    log.fatal({ err }, (err as Error).message);
    await stop().catch(() => undefined);
    process.exit(1);
  }
}
