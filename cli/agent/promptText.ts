// What a desktop notification and the panel say about a prompt: the program (its desktop entry's
// name when one runs this executable), for an interpreter the script it runs, the user, and the
// destination. Every string a process controls is made visible (common/visibleText.ts) and, for
// a notification body, escaped as markup: the Desktop Notifications spec lets servers read the
// body as a subset of HTML (<b>, <i>, <a href>, <img>), so a program named "<a href=...>" would
// otherwise become a link.
import { basename } from 'node:path';
import type { DetailedConnectionRequest } from '../../common/guiProtocol.js';
import type { PromptFacts } from '../../common/panelApi.js';
import { visible } from '../../common/visibleText.js';
import type { DesktopEntry } from './desktopEntries.js';
import { hostPort } from '../decisionLine.js';
import { UNVERIFIED_NAME } from '../promptView.js';

/** Notification body markup: the five XML specials as entities. */
export function escapeMarkup(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const INTERPRETERS =
  /^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node(js)?|bash|sh|dash|zsh|ksh|fish|php[0-9.]*|lua[0-9.]*|tclsh[0-9.]*|wish[0-9.]*|osascript|gjs|deno|bun)$/;

/** The script an interpreter runs: its first argument that is not an option, or null. */
export function interpretedScript(appPath: string, args: readonly string[]): string | null {
  if (!INTERPRETERS.test(basename(appPath))) return null;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-c' || a === '-e' || a === '-m') return args[i + 1] === undefined ? null : `${a} ${args[i + 1]}`;
    if (!a.startsWith('-')) return a;
  }
  return null;
}

/** The bare comm: the service appends " (<host>)" or " (<host>, unverified)" to app_name. */
export function bareName(appName: string): string {
  return appName.replace(/ \([^()]*\)$/, '');
}

export function promptFacts(req: DetailedConnectionRequest, entry: DesktopEntry | null, userName: (uid: number) => string | null): PromptFacts {
  const details = req.details;
  const host = details?.host ?? null;
  const icmp = req.protocol === 'ICMP';
  const destination =
    host === null ? (icmp ? req.dest_ip : hostPort(req.dest_ip, req.dest_port)) : `${host}${icmp ? '' : `:${req.dest_port}`} (${req.dest_ip})`;
  return {
    program: visible(entry?.name ?? bareName(req.app_name), { maxChars: 80 }),
    icon: entry?.icon ?? null,
    path: visible(req.app_path, { maxChars: 300 }),
    script: details ? nullable(interpretedScript(req.app_path, details.args), 300) : null,
    user: details ? (userName(details.uid) ?? `uid ${details.uid}`) : null,
    destination: visible(destination, { maxChars: 300 }),
    protocol: visible(req.protocol),
    unverified: UNVERIFIED_NAME.test(req.app_name),
  };
}

function nullable(text: string | null, maxChars: number): string | null {
  return text === null ? null : visible(text, { maxChars });
}

/**
 * Summary and body of the notification: the body as escaped markup where the server reads
 * markup, else as plain text (a server without body-markup would show the tags).
 */
export function notificationText(f: PromptFacts, learning: boolean, markup: boolean): { summary: string; body: string } {
  const esc = markup ? escapeMarkup : (t: string): string => t;
  const bold = (t: string): string => (markup ? `<b>${t}</b>` : t);
  const italic = (t: string): string => (markup ? `<i>${t}</i>` : t);
  const summary = learning ? `${f.program} connected (learning mode)` : `${f.program} wants to connect`;
  const lines = [
    `${bold(esc(f.destination))} ${esc(f.protocol)}`,
    esc(f.path),
    ...(f.script === null ? [] : [`script: ${esc(f.script)}`]),
    ...(f.user === null ? [] : [`user: ${esc(f.user)}`]),
    ...(f.unverified ? [italic('name not from the system resolver: anyone may have forged it')] : []),
  ];
  // The summary is plain text in the spec, but some servers render markup there as well.
  return { summary: esc(summary), body: lines.join('\n') };
}
