// The escape of text processes control (common/visibleText.ts): each case's exact output, that
// no control or bidi character survives any input, that the mapping is one to one, and that
// the JSON and log forms keep the real values.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { VISIBLE_LOG_OPTIONS } from '../../common/log.js';
import { visible, visibleFields, visibleJson } from '../../common/visibleText.js';
import { RAW_CONTROL } from '../support/rawControl.js';

const CASES: [name: string, input: string, output: string][] = [
  ['plain ASCII path', '/usr/bin/curl', '/usr/bin/curl'],
  ['spaces, quotes, brackets stay', '/opt/My App (x86)/"a" [b]', '/opt/My App (x86)/"a" [b]'],
  ['non-Latin letters stay', '/home/ü/日本/файл', '/home/ü/日本/файл'],
  ['emoji (a surrogate pair) stays', '/tmp/🔥', '/tmp/🔥'],
  ['backslash doubled', 'a\\b', 'a\\\\b'],
  ['a literal "\\x1b" is not an escape', 'a\\x1b', 'a\\\\x1b'],
  ['NUL', 'a\0b', 'a\\x00b'],
  ['tab, newline, CR', '\t\n\r', '\\x09\\x0a\\x0d'],
  ['ESC [2K (erase line)', '\x1b[2K', '\\x1b[2K'],
  ['ESC [1G (column 1)', '\x1b[1G', '\\x1b[1G'],
  ['OSC 0 window title, BEL-terminated', '\x1b]0;pwned\x07', '\\x1b]0;pwned\\x07'],
  ['OSC 0 window title, ST-terminated', '\x1b]0;t\x1b\\', '\\x1b]0;t\\x1b\\\\'],
  ['DEL', 'a\x7f', 'a\\x7f'],
  ['C1 NEL, CSI, OSC, ST', '\u0085\u009b2K\u009d0;t\u009c', '\\u0085\\u009b2K\\u009d0;t\\u009c'],
  ['C1 bounds', '\u0080\u009f\u00a0', '\\u0080\\u009f\u00a0'],
  ['right-to-left override', '/tmp/\u202egpj.exe', '/tmp/\\u202egpj.exe'],
  ['every embedding and override', '\u202a\u202b\u202c\u202d\u202e', '\\u202a\\u202b\\u202c\\u202d\\u202e'],
  ['every isolate', '\u2066\u2067\u2068\u2069', '\\u2066\\u2067\\u2068\\u2069'],
  ['LRM, RLM, ALM', '\u200e\u200f\u061c', '\\u200e\\u200f\\u061c'],
  ['line and paragraph separators', '\u2028\u2029', '\\u2028\\u2029'],
  ['zero-width joiner stays (not a control)', 'a\u200db', 'a\u200db'],
  ['U+FFFD: a byte that was not UTF-8', Buffer.from([0x2f, 0x74, 0xff, 0x78]).toString('utf8'), '/t\\ufffdx'],
  ['lone surrogates', '\ud800x\udfff', '\\ud800x\\udfff'],
];

describe('visible(): the escape table', () => {
  for (const [name, input, output] of CASES) {
    it(name, () => {
      assert.equal(visible(input), output);
      assert.ok(!RAW_CONTROL.test(visible(input)));
    });
  }

  it("extra ASCII on request (the journal line's syntax), as \\xNN", () => {
    assert.equal(visible('a "b" [c] (d) -e', { also: '"[()' }), 'a \\x22b\\x22 \\x5bc] \\x28d\\x29 -e');
    assert.equal(visible('x]-^\\', { also: ']-^' }), 'x\\x5d\\x2d\\x5e\\\\');
    assert.throws(() => visible('a', { also: 'é' }));
  });

  it('maxChars cuts between escapes, never inside one, and says so with "..."', () => {
    assert.equal(visible('abcdef', { maxChars: 6 }), 'abcdef');
    assert.equal(visible('abcdefg', { maxChars: 6 }), 'abcdef...');
    assert.equal(visible('ab\x1bcd', { maxChars: 5 }), 'ab...'); // "ab\x1b" would be 6
    assert.equal(visible('ab\x1bcd', { maxChars: 6 }), 'ab\\x1b...');
    assert.equal(visible('\u202e'.repeat(100), { maxChars: 20 }), '\\u202e\\u202e\\u202e...');
    assert.equal(visible('🔥🔥🔥', { maxChars: 5 }), '🔥🔥...');
  });

  it('no raw control in the output of any character U+0000..U+FFFF, and distinct inputs give distinct outputs', () => {
    const seen = new Map<string, number>();
    for (let code = 0; code <= 0xffff; code++) {
      const ch = String.fromCharCode(code);
      const out = visible(`${ch}\\x`);
      assert.ok(!RAW_CONTROL.test(out), `U+${code.toString(16)} came out raw`);
      assert.equal(seen.get(out), undefined, `U+${code.toString(16)} and U+${seen.get(out)?.toString(16)} look the same`);
      seen.set(out, code);
    }
  });

  it('is undone by reading each escape back (one to one)', () => {
    const unescape = (s: string): string =>
      s.replace(/\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})/g, (_, e: string) => (e === '\\' ? '\\' : String.fromCharCode(parseInt(e.slice(1), 16))));
    for (const [, input] of CASES) assert.equal(unescape(visible(input)), input);
    assert.equal(unescape(visible('\\x1b \x1b \\\\x1b')), '\\x1b \x1b \\\\x1b');
  });
});

describe('visibleJson(): JSON output for terminals', () => {
  it('escapes what JSON.stringify leaves raw, and parses back to the same values', () => {
    const value = { app_path: '/tmp/\u202e\u0085\x1b[2K\x7f\ufffd\u2028', app_name: 'a"b\\c', n: 1 };
    const text = visibleJson(value);
    assert.equal(text, '{"app_path":"/tmp/\\u202e\\u0085\\u001b[2K\\u007f\\ufffd\\u2028","app_name":"a\\"b\\\\c","n":1}');
    assert.ok(!RAW_CONTROL.test(text));
    assert.deepEqual(JSON.parse(text), value);
    assert.equal(visibleJson({ a: 'é' }, 2), '{\n  "a": "é"\n}');
  });
});

describe('log lines', () => {
  it("visibleFields escapes strings at any depth and keeps numbers, errors and a stack's lines", () => {
    const err = new Error('x');
    const out = visibleFields({ exe: '/tmp/\x1b]0;t\x07', n: 3, list: ['\u202e'], nested: { key: '\u0085:80' }, err, stack: 'a\x1b\nb' });
    assert.deepEqual(out, { exe: '/tmp/\\x1b]0;t\\x07', n: 3, list: ['\\u202e'], nested: { key: '\\u0085:80' }, err, stack: 'a\\x1b\nb' });
  });

  it('a pino logger with these options writes no raw control or bidi character, in fields, message or error', () => {
    let written = '';
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => ((written += chunk.toString('utf8')), done()) });
    const log = pino({ level: 'debug', ...VISIBLE_LOG_OPTIONS }, sink);
    const path = '/tmp/firefox\x1b[2K\x1b[1G\x1b]0;firefox\x07\r\u0085\u202e';
    log.info({ exe: path, key: `${path}:443`, obj: { deep: path } }, `prompt opened for ${path}`);
    log.error({ err: new Error(`cannot save ${path}`) }, 'failed');
    log.error(new Error(`thrown ${path}`));
    const lines = written.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(!RAW_CONTROL.test(written), written);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    const shown = '/tmp/firefox\\x1b[2K\\x1b[1G\\x1b]0;firefox\\x07\\x0d\\u0085\\u202e';
    assert.equal(first['exe'], shown);
    assert.equal(first['key'], `${shown}:443`);
    assert.deepEqual(first['obj'], { deep: shown });
    assert.equal(first['msg'], `prompt opened for ${shown}`);
    const second = JSON.parse(lines[1]!) as { err: { message: string; stack: string } };
    assert.equal(second.err.message, `cannot save ${shown}`);
    assert.ok(second.err.stack.startsWith(`Error: cannot save ${shown}\n    at `));
    const third = JSON.parse(lines[2]!) as { err: { message: string }; msg: string };
    assert.equal(third.err.message, `thrown ${shown}`);
    assert.equal(third.msg, `thrown ${shown}`);
  });
});
