import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseClientMessage, parseServiceLine, parseServiceMessage } from '../../common/guiProtocol.js';

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
});
