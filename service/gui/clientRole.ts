// Which GUI clients can answer prompts. Neither the tray nor the control panel says who it is:
// both connect and read, and the panel's stats connection never writes a byte (the upstream
// GUI's DashboardWindow.connect_to_daemon). Counted as a client that could answer, an open panel
// made unknown connections wait the whole timeout with no tray to ask. The peer's pid
// (SO_PEERCRED, read at accept) tells: the control panel runs as `bastion-control-panel` (a
// Python script, so argv is [python3, /usr/bin/bastion-control-panel]), `bastion_control_panel.py`
// or `python3 -m bastion.gui.dashboard...`. Anything else may answer, as before.
import { readFileSync } from 'node:fs';
import type { PeerCredentials } from './guiServer.js';

const PANEL_PROGRAM = /^bastion[-_]control[-_]panel(\.py)?$/;
const PANEL_MODULE = /^bastion\.gui\.dashboard(\.|$)/;

/** argv of a process, or null when it is gone or unreadable. */
export function processArgv(pid: number, procRoot = '/proc'): string[] | null {
  try {
    const raw = readFileSync(`${procRoot}/${pid}/cmdline`);
    if (raw.length === 0) return null;
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** Whether argv is the control panel's (only its first few words are looked at). */
export function isControlPanelArgv(argv: readonly string[]): boolean {
  const words = argv.slice(0, 4);
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (PANEL_PROGRAM.test(word.slice(word.lastIndexOf('/') + 1))) return true;
    if (word === '-m' && PANEL_MODULE.test(words[i + 1] ?? '')) return true;
  }
  return false;
}

/** The control panel connects only to show statistics: it never answers a prompt. */
export function isControlPanel(peer: PeerCredentials | null, procRoot = '/proc'): boolean {
  if (!peer || peer.pid <= 0) return false;
  const argv = processArgv(peer.pid, procRoot);
  return argv !== null && isControlPanelArgv(argv);
}
