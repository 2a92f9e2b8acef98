// What `bastion prompt`, `bastion monitor` and `bastion log` print for a program whose comm and
// path hold terminal escapes (issue 18, item 3): the exact lines, every control shown as an
// escape (common/visibleText.ts), so the prompt cannot be redrawn to read another program.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_COLORS } from '../../cli/colors.js';
import { formatDecision, type DecisionMessage } from '../../cli/decisionLine.js';
import { rowJson } from '../../cli/logCommand.js';
import type { ConnectionRequest } from '../../cli/promptKeys.js';
import { PromptSession } from '../../cli/promptSession.js';
import { requestLines } from '../../cli/promptView.js';
import { parseServiceMessage } from '../../common/guiProtocol.js';
import { visibleJson } from '../../common/visibleText.js';
import { rawControls } from '../support/rawControl.js';

const COMM = 'firefox\x1b[2K\x1b[1G\r';
const PATH = '/tmp/evil\x1b]0;firefox\x07\r\x1b[2K/usr/lib/firefox/firefox\u0085\u202e';
const COMM_SHOWN = 'firefox\\x1b[2K\\x1b[1G\\x0d';
const PATH_SHOWN = '/tmp/evil\\x1b]0;firefox\\x07\\x0d\\x1b[2K/usr/lib/firefox/firefox\\u0085\\u202e';

const request: ConnectionRequest = {
  type: 'connection_request',
  request_id: 'r1',
  app_name: COMM,
  app_path: PATH,
  app_category: 'unknown',
  dest_ip: '198.51.100.7',
  dest_port: 443,
  protocol: 'TCP',
  learning_mode: false,
} as ConnectionRequest;

describe('terminal views of a program with escapes in its name and path', () => {
  it('bastion prompt: the request lines, exactly', () => {
    assert.deepEqual(requestLines(request, NO_COLORS), [
      `? ${COMM_SHOWN} wants to connect`,
      `  path         ${PATH_SHOWN}`,
      '  destination  198.51.100.7:443',
      '  port         443',
      '  protocol     TCP',
    ]);
  });

  it("bastion prompt: the whole session's output holds no raw control character (a service error text included)", () => {
    let out = '';
    const session = new PromptSession({ send: () => undefined, write: (t) => (out += t), tty: false, colors: NO_COLORS, timeoutSeconds: 60, now: () => 0 });
    session.start();
    const parsed = parseServiceMessage({ ...request, app_category: 'unknown' });
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    session.onMessage(parsed.message);
    session.onMessage({ type: 'error', error: `rule not saved: ${PATH}:443`, request: 'gui_response' });
    assert.equal(rawControls(out), 0, out);
    assert.ok(out.includes(`service: rule not saved: ${PATH_SHOWN}:443`));
  });

  const decision: DecisionMessage = {
    time: '2026-12-05T13:10:53.000Z',
    pid: 7,
    app_name: COMM,
    app_path: PATH,
    dest_ip: '198.51.100.7',
    dest_port: 443,
    protocol: 'TCP',
    allow: true,
    reason: 'rule',
    rule_key: `${PATH}:443`,
    connections: 1,
    missed: 0,
    host: 'www.example.org',
  } as DecisionMessage;

  it('bastion monitor: the decision line, exactly', () => {
    assert.deepEqual(formatDecision(decision, NO_COLORS), [
      `13:10:53 ALLOW ${COMM_SHOWN} ${PATH_SHOWN} → www.example.org (198.51.100.7:443) TCP  [rule ${PATH_SHOWN}:443]`,
    ]);
  });

  it('a host name that is not a host name is not shown as one', () => {
    const line = formatDecision({ ...decision, host: 'evil\x1b]0;x\x07.org' }, NO_COLORS)[0]!;
    assert.equal(rawControls(line), 0);
    assert.ok(line.includes('→ 198.51.100.7:443 TCP'));
  });

  it('bastion log --json: the real values, with C1 and bidi written as JSON escapes', () => {
    const row = {
      at: Date.parse(decision.time),
      pid: 7,
      uid: 1000,
      comm: COMM,
      program: PATH,
      host: null,
      dest: '198.51.100.7',
      port: 443,
      protocol: 'TCP',
      allow: true,
      reason: 'rule',
      rule: null,
      connections: 1,
    };
    const text = visibleJson(rowJson(row as Parameters<typeof rowJson>[0]));
    assert.equal(rawControls(text), 0);
    assert.ok(text.includes('"app_path":"/tmp/evil\\u001b]0;firefox\\u0007\\r\\u001b[2K/usr/lib/firefox/firefox\\u0085\\u202e"'));
    assert.equal((JSON.parse(text) as { app_path: string }).app_path, PATH);
  });
});
