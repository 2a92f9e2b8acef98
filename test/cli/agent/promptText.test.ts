import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DesktopEntries, execProgram } from '../../../cli/agent/desktopEntries.js';
import { escapeMarkup, interpretedScript, notificationText, promptFacts } from '../../../cli/agent/promptText.js';
import type { DetailedConnectionRequest } from '../../../common/guiProtocol.js';

const REQ: DetailedConnectionRequest = {
  type: 'connection_request',
  request_id: 'r',
  app_name: 'python3 (example.org)',
  app_path: '/usr/bin/python3.11',
  app_category: 'unknown',
  dest_ip: '2001:db8::1',
  dest_port: 443,
  protocol: 'TCP',
  learning_mode: false,
  details: { pid: 9, uid: 1000, args: ['python3', '-u', '/home/a/<b>sync</b>.py'], host: 'example.org' },
};

describe('prompt text', () => {
  it('escapes the five markup characters', () => {
    assert.equal(escapeMarkup(`<a href="x">&'`), '&#60;a href=&#34;x&#34;&#62;&#38;&#39;');
  });

  it("names an interpreter's script, skipping options, and nothing for other programs", () => {
    assert.equal(interpretedScript('/usr/bin/python3.11', ['python3', '-u', 'x.py']), 'x.py');
    assert.equal(interpretedScript('/usr/bin/bash', ['bash', '-c', 'curl x']), '-c curl x');
    assert.equal(interpretedScript('/usr/bin/curl', ['curl', 'x']), null);
  });

  it('a body with markup escapes every string a process chose; without markup it has no tags', () => {
    const facts = promptFacts(REQ, null, (uid) => (uid === 1000 ? 'alice' : null));
    const marked = notificationText(facts, false, true);
    assert.equal(marked.summary, 'python3 wants to connect');
    assert.equal(
      marked.body,
      ['<b>example.org:443 (2001:db8::1)</b> TCP', '/usr/bin/python3.11', 'script: /home/a/&#60;b&#62;sync&#60;/b&#62;.py', 'user: alice'].join('\n'),
    );
    const plain = notificationText(facts, false, false);
    assert.equal(plain.body.split('\n')[2], 'script: /home/a/<b>sync</b>.py');
    assert.ok(!plain.body.includes('<b>example'));
  });

  it('makes control characters visible before anything else', () => {
    const facts = promptFacts({ ...REQ, app_name: 'evil\u001b[2J', details: undefined as never }, null, () => null);
    assert.equal(facts.program, 'evil\\x1b[2J');
  });
});

describe('desktop entries', () => {
  it('reads the program of an Exec line, quoted or not', () => {
    assert.equal(execProgram('firefox-esr %u'), 'firefox-esr');
    assert.equal(execProgram('"/opt/My App/app" --x'), '/opt/My App/app');
    assert.equal(execProgram('env FOO=1 app'), null);
  });

  it("finds the entry that runs an executable; the user's own entry wins over the system's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'bastion-entries-'));
    try {
      for (const d of ['user', 'system']) mkdirSync(join(dir, d));
      writeFileSync(join(dir, 'system', 'curl.desktop'), '[Desktop Entry]\nType=Application\nName=System Curl\nIcon=curl\nExec=/usr/bin/curl %u\n');
      writeFileSync(join(dir, 'user', 'curl.desktop'), '[Desktop Entry]\nType=Application\nName=My Curl\nExec=curl\n');
      writeFileSync(join(dir, 'user', 'hidden.desktop'), '[Desktop Entry]\nType=Application\nName=Hidden\nNoDisplay=true\nExec=/usr/bin/true\n');
      const entries = new DesktopEntries([join(dir, 'user'), join(dir, 'system')], '/usr/bin');
      assert.equal(entries.find('/usr/bin/curl')?.name, 'My Curl');
      assert.equal(entries.find('/usr/bin/true'), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
