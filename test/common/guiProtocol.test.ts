import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { claimedType, parseClientMessage, parseServiceLine, parseServiceMessage, readClientMessage } from '../../common/guiProtocol.js';

const TRAY_LINES = readFileSync(new URL('../fixtures/tray-messages.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '');

const REQUEST = {
  type: 'connection_request',
  request_id: 'curl-1',
  app_name: 'curl',
  app_path: '/usr/bin/curl',
  app_category: 'unknown',
  dest_ip: '192.0.2.7',
  dest_port: 443,
  protocol: 'TCP',
  learning_mode: false,
};

describe('guiProtocol', () => {
  it('reads a connection_request with its details and drops fields it does not know', () => {
    const parsed = parseServiceMessage({ ...REQUEST, extra: 1, details: { pid: 7, uid: 1000, args: ['python3', 'x.py', 5], host: 'example.org' } });
    assert.deepEqual(parsed, { ok: true, message: { ...REQUEST, details: { pid: 7, uid: 1000, args: ['python3', 'x.py'], host: 'example.org' } } });
  });

  it('names the field that is missing or of the wrong type', () => {
    const { dest_port: _, ...noPort } = REQUEST;
    assert.deepEqual(parseServiceMessage(noPort), { ok: false, error: 'connection_request: missing field "dest_port"' });
    assert.deepEqual(parseServiceMessage({ ...REQUEST, dest_port: '443' }), { ok: false, error: 'connection_request: field "dest_port" must be an integer' });
    assert.deepEqual(parseServiceMessage({ type: 'mode_changed', mode: 'off' }), {
      ok: false,
      error: 'mode_changed: field "mode" must be "learning" or "enforcement"',
    });
  });

  it('refuses what is not a message: not JSON, not an object, no type, an unknown type', () => {
    assert.deepEqual(parseServiceLine('{'), { ok: false, error: 'not valid JSON' });
    assert.deepEqual(parseServiceMessage([1]), { ok: false, error: 'a message must be a JSON object' });
    assert.deepEqual(parseServiceMessage({}), { ok: false, error: 'missing field "type"' });
    assert.deepEqual(parseServiceMessage({ type: '__proto__' }), { ok: false, error: 'unknown message type "__proto__"' });
  });

  it('checks client messages the same way (what the panel asks the agent to send)', () => {
    assert.deepEqual(parseClientMessage({ type: 'delete_rule', key: '/usr/bin/curl:443' }), {
      ok: true,
      message: { type: 'delete_rule', key: '/usr/bin/curl:443' },
    });
    assert.deepEqual(parseClientMessage({ type: 'add_rule', app_path: '@host:example.org', port: 1.5, allow: true }), {
      ok: false,
      error: 'add_rule: field "port" must be 0..65535',
    });
    assert.deepEqual(parseClientMessage({ type: 'set_config', key: 'allow_lan', value: false }), {
      ok: true,
      message: { type: 'set_config', key: 'allow_lan', value: false },
    });
  });

  it('reads every line the Python tray sends, every field kept', () => {
    assert.ok(TRAY_LINES.length >= 10);
    for (const line of TRAY_LINES) {
      const value: unknown = JSON.parse(line);
      assert.deepEqual(readClientMessage(value), { ok: true, message: value }, line);
    }
  });

  it('reads a client null as an absent field, except where null is a value', () => {
    assert.deepEqual(readClientMessage({ type: 'add_rule', app_path: '/usr/bin/curl', port: null, dest_ip: null, allow: true }), {
      ok: true,
      message: { type: 'add_rule', app_path: '/usr/bin/curl', allow: true },
    });
    assert.deepEqual(readClientMessage({ type: 'set_config', key: 'allow_lan', value: null }), {
      ok: true,
      message: { type: 'set_config', key: 'allow_lan', value: null },
    });
    assert.deepEqual(readClientMessage({ type: 'delete_rule', key: null }), { ok: false, refusal: { error: 'missing field "key"', request: 'delete_rule' } });
  });

  it("refuses a client message in the words and with the request of the service's error reply", () => {
    const cases: [value: unknown, error: string, request: string | null][] = [
      [null, 'a message must be a JSON object', null],
      [{ type: 7 }, 'missing field "type"', null],
      [{ type: 'reboot' }, 'unknown message type "reboot"', 'reboot'],
      [{ type: 'toString' }, 'unknown message type "toString"', 'toString'],
      [{ type: 'add_rule', app_path: '/x', port: '443', allow: true }, 'field "port" must be a number', 'add_rule'],
      [{ type: 'add_rule', app_path: '/x', port: 1.5, allow: true }, 'field "port" must be 0..65535', 'add_rule'],
      [{ type: 'add_rule', app_path: '/x', port: -1, allow: true }, 'field "port" must be 0..65535', 'add_rule'],
      [{ type: 'set_mode', mode: 1 }, 'field "mode" must be a string', 'set_mode'],
      [{ type: 'set_mode', mode: 'paranoid' }, 'field "mode" must be "learning" or "enforcement"', 'set_mode'],
      [{ type: 'set_config', key: 'allow_lan' }, 'missing field "value"', 'set_config'],
      [{ type: 'import_rules', rules: {} }, 'field "rules" must be an array of rules', 'import_rules'],
      [{ type: 'gui_response', request_id: 'curl-1', allow: true, duration: 30 }, 'field "duration" must be a string', 'gui_response'],
    ];
    for (const [value, error, request] of cases) assert.deepEqual(readClientMessage(value), { ok: false, refusal: { error, request } }, JSON.stringify(value));
    assert.deepEqual(parseClientMessage({ type: 'set_mode', mode: 1 }), { ok: false, error: 'set_mode: field "mode" must be a string' });
  });

  it('names the type a message claims, for an error about it', () => {
    assert.equal(claimedType({ type: 'status' }), 'status');
    assert.equal(claimedType({ type: 7 }), null);
    assert.equal(claimedType('status'), null);
  });
});
