// Text a process controls (its path, comm, argv, the host names and other DNS data learned for
// it) made visible before it reaches a terminal, a journal line or a log: nothing in it can move
// the cursor, clear a line, set a window title or reorder what is shown, and every escape maps
// back to exactly one input. The convention (docs/SECURITY.md, "Text a process controls"):
//
//   \\       a backslash
//   \xNN     C0 controls U+0000-U+001F and DEL U+007F (two lowercase hex digits); also the
//            ASCII characters a context names in `also` (the journal's quotes and brackets)
//   \uNNNN   C1 controls U+0080-U+009F; the bidirectional marks, embeddings, overrides and
//            isolates U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069; the line and
//            paragraph separators U+2028, U+2029; U+FFFD, which stands for every byte of a
//            path that was not UTF-8 (Node decodes /proc's bytes that way); a lone surrogate
//
// Every other character is itself. The values sent to the GUI socket stay the real ones (rules
// are keyed by them): this is for what is printed or logged.

const BASE_CLASS = '\\\\\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ufffd\\ud800-\\udfff';

/** Whether text needs no escape at all (the usual case: one regex test, no copy). */
const ANY = new RegExp(`[${BASE_CLASS}]`, 'u');

const patterns = new Map<string, RegExp>();

function patternFor(also: string): RegExp {
  let re = patterns.get(also);
  if (!re) {
    for (const ch of also) if (ch.charCodeAt(0) > 0x7e || ch.length !== 1) throw new Error(`only ASCII may be escaped on request, not ${JSON.stringify(ch)}`);
    const extra = also.replace(/[\\\]^-]/g, '\\$&');
    re = new RegExp(`[${BASE_CLASS}${extra}]`, 'gu');
    patterns.set(also, re);
  }
  return re;
}

function hex(code: number, digits: number): string {
  return code.toString(16).padStart(digits, '0');
}

/** The escape of one character the pattern matched. */
function escapeChar(ch: string): string {
  if (ch === '\\') return '\\\\';
  const code = ch.charCodeAt(0);
  return code < 0x80 ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
}

export interface VisibleOptions {
  /** ASCII characters to escape as \xNN as well, where a reader would take them as syntax. */
  also?: string;
  /** At most this many characters out; a longer result is cut between escapes and ends in "...". */
  maxChars?: number;
}

/** text with every control, bidi mark and backslash escaped (see above); ordinary text unchanged. */
export function visible(text: string, options: VisibleOptions = {}): string {
  const also = options.also ?? '';
  let out = also === '' && !ANY.test(text) ? text : text.replace(patternFor(also), escapeChar);
  const max = options.maxChars;
  if (max !== undefined && out.length > max) out = cut(text, patternFor(also), max);
  return out;
}

/** The escaped text of the longest prefix of text whose escape fits in max characters, then "...". */
function cut(text: string, re: RegExp, max: number): string {
  let out = '';
  for (const ch of text) {
    re.lastIndex = 0;
    const piece = re.test(ch) ? escapeChar(ch) : ch;
    if (out.length + piece.length > max) break;
    out += piece;
  }
  return `${out}...`;
}

/** JSON escapes for what JSON.stringify leaves raw: DEL, C1, bidi marks, separators, U+FFFD. */
const JSON_RAW = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufffd]/g;

/**
 * JSON.stringify, with the characters it leaves raw written as \uNNNN escapes too: the same
 * values once parsed, and no control or bidi character on the terminal (`--json` output).
 * JSON.stringify already escapes C0 controls and lone surrogates.
 */
export function visibleJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(JSON_RAW, (ch) => `\\u${hex(ch.charCodeAt(0), 4)}`);
}

/** How deep visibleFields looks into a log line's objects. */
const MAX_DEPTH = 6;

/**
 * A log line's fields with every string made visible (pino's formatters.log): plain objects and
 * arrays are copied, anything else (numbers, errors, buffers) is kept as it is. A `stack` keeps
 * its line breaks; each line is escaped.
 */
export function visibleFields<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return visible(value) as T;
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => visibleFields(v, depth + 1)) as T;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    out[key] =
      key === 'stack' && typeof v === 'string'
        ? v
            .split('\n')
            .map((line) => visible(line))
            .join('\n')
        : visibleFields(v, depth + 1);
  }
  return out as T;
}
