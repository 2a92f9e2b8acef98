// gui_response `duration` and `permanent` as the tray sends them, and the timed extension.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DURATION_ERROR, parseAnswerScope, type ParsedScope } from '../../service/prompts/answerScope.js';

const cases: [duration: string, permanent: boolean, expected: ParsedScope][] = [
  ['once', false, { ok: true, scope: { kind: 'once' } }],
  ['session', false, { ok: true, scope: { kind: 'session' } }],
  ['always', true, { ok: true, scope: { kind: 'always' } }],
  ['always', false, { ok: true, scope: { kind: 'always' } }],
  ['', true, { ok: true, scope: { kind: 'always' } }],
  ['', false, { ok: true, scope: { kind: 'once' } }],
  ['once', true, { ok: true, scope: { kind: 'once' } }],
  ['30s', false, { ok: true, scope: { kind: 'timed', ttlMs: 30_000 } }],
  ['5m', false, { ok: true, scope: { kind: 'timed', ttlMs: 300_000 } }],
  ['1h', false, { ok: true, scope: { kind: 'timed', ttlMs: 3_600_000 } }],
  ['2d', false, { ok: true, scope: { kind: 'timed', ttlMs: 172_800_000 } }],
  ['0s', false, { ok: false, error: 'field "duration" must be between 1s and 365d, got "0s"' }],
  ['366d', false, { ok: false, error: 'field "duration" must be between 1s and 365d, got "366d"' }],
  ['forever', false, { ok: false, error: DURATION_ERROR }],
  ['5 m', false, { ok: false, error: DURATION_ERROR }],
  ['-5m', false, { ok: false, error: DURATION_ERROR }],
  ['Once', false, { ok: false, error: DURATION_ERROR }],
];

describe('prompt answer durations', () => {
  for (const [duration, permanent, expected] of cases) {
    it(`"${duration}" with permanent ${permanent} is ${expected.ok ? expected.scope.kind : 'refused'}`, () => {
      assert.deepEqual(parseAnswerScope(duration, permanent), expected);
    });
  }
});
