// One logger setup for every process: readable on a terminal, JSON lines otherwise (journald,
// files, tests). A disabled level costs nothing, so per-packet lines use debug.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  name: string;
  level?: string;
  /** Force JSON (true) or pretty (false); default: pretty when stderr is a terminal. */
  json?: boolean;
}

export function createLogger(options: LogOptions): Logger {
  const level = options.level ?? process.env['BASTION_LOG_LEVEL'] ?? 'info';
  const json = options.json ?? !process.stderr.isTTY;
  if (json) return pino({ name: options.name, level }, pino.destination({ fd: 2, sync: true }));
  // pino-pretty as a synchronous stream: no worker thread, nothing lost on a crash.
  return pino({ name: options.name, level }, pretty({ destination: 2, sync: true, colorize: true }));
}
