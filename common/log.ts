// One logger setup for every process: readable on a terminal, JSON lines otherwise (journald,
// files, tests). A disabled level costs nothing, so per-packet lines use debug.
//
// Log lines carry text processes control (paths, comm, host names): every string in a line, the
// message included, is made visible (common/visibleText.ts) before it is written. pino's JSON
// escapes C0 controls but not C1 or bidi marks, and pino-pretty prints them as they are.
import pino, { type Logger, stdSerializers } from 'pino';
import pretty from 'pino-pretty';
import { visible, visibleFields } from './visibleText.js';

export type { Logger };

export interface LogOptions {
  name: string;
  level?: string;
  /** Force JSON (true) or pretty (false); default: pretty when stderr is a terminal. */
  json?: boolean;
}

/** The pino options that make every string of a line visible (exported for the tests). */
export const VISIBLE_LOG_OPTIONS = {
  formatters: { log: (fields: Record<string, unknown>) => visibleFields(fields) },
  serializers: {
    err: (err: Error) => visibleFields({ ...stdSerializers.err(err) }),
    msg: (msg: unknown) => (typeof msg === 'string' ? visible(msg) : msg),
  },
} satisfies pino.LoggerOptions;

export function createLogger(options: LogOptions): Logger {
  const level = options.level ?? process.env['BASTION_LOG_LEVEL'] ?? 'info';
  const json = options.json ?? !process.stderr.isTTY;
  const base = { name: options.name, level, ...VISIBLE_LOG_OPTIONS };
  if (json) return pino(base, pino.destination({ fd: 2, sync: true }));
  // pino-pretty as a synchronous stream: no worker thread, nothing lost on a crash.
  return pino(base, pretty({ destination: 2, sync: true, colorize: true }));
}
