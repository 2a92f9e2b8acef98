// The desktop entry (.desktop file) of a program, found by its executable: its Name and Icon make
// a prompt say "Firefox" with Firefox's icon instead of a path. Looked up in the user's and the
// system's application directories (XDG Base Directory: $XDG_DATA_HOME, $XDG_DATA_DIRS), read
// once and kept; entries are files the user or root installed, but their text is still escaped
// wherever it is shown.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export interface DesktopEntry {
  name: string;
  /** An icon theme name (e.g. "firefox-esr") or an absolute path. */
  icon: string | null;
  file: string;
}

/** Larger files are no desktop entries anyone wrote by hand; skipped. */
const MAX_ENTRY_BYTES = 64 * 1024;
const MAX_ENTRIES = 5000;

function dataDirs(env: NodeJS.ProcessEnv): string[] {
  const home = env['XDG_DATA_HOME'] || join(env['HOME'] || homedir(), '.local/share');
  const system = (env['XDG_DATA_DIRS'] || '/usr/local/share:/usr/share').split(':').filter((d) => isAbsolute(d));
  return [home, ...system];
}

export function applicationDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  return dataDirs(env).map((d) => join(d, 'applications'));
}

/** Icons larger than this are not served to the panel. */
const MAX_ICON_BYTES = 256 * 1024;
const ICON_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ICON_SIZES = ['scalable', '256x256', '128x128', '64x64', '48x48', '32x32'];

/**
 * The file of an icon for the panel: an absolute path from the entry, or a theme name looked up
 * in the hicolor theme (every desktop's fallback theme) and pixmaps; SVG or PNG only.
 */
export function iconFile(icon: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates: string[] = [];
  if (isAbsolute(icon)) candidates.push(icon);
  else if (ICON_NAME.test(icon)) {
    for (const d of dataDirs(env)) {
      for (const size of ICON_SIZES) for (const ext of ['svg', 'png']) candidates.push(join(d, 'icons/hicolor', size, 'apps', `${icon}.${ext}`));
    }
    for (const ext of ['svg', 'png']) candidates.push(`/usr/share/pixmaps/${icon}.${ext}`);
  }
  for (const c of candidates) {
    if (!/\.(svg|png)$/.test(c)) continue;
    try {
      const st = statSync(c);
      if (st.isFile() && st.size <= MAX_ICON_BYTES) return c;
    } catch {
      // not there
    }
  }
  return null;
}

/** The [Desktop Entry] group's keys (unlocalized) of one file's text. */
export function parseDesktopEntry(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  let inMain = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inMain = line === '[Desktop Entry]';
      continue;
    }
    if (!inMain || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    if (!keys.has(key)) keys.set(key, line.slice(eq + 1).trim());
  }
  return keys;
}

/** The program an Exec line starts (its first word, quotes removed), or null. */
export function execProgram(exec: string): string | null {
  const m = /^\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(exec);
  if (!m) return null;
  const word = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
  return word === 'env' ? null : word;
}

function resolveProgram(program: string, path: string): string | null {
  const candidates = isAbsolute(program) ? [program] : path.split(':').map((d) => join(d, program));
  for (const c of candidates) {
    try {
      if (statSync(c).isFile()) return realpathSync(c);
    } catch {
      // not there
    }
  }
  return null;
}

export class DesktopEntries {
  private byExe: Map<string, DesktopEntry> | null = null;

  constructor(
    private readonly dirs: readonly string[] = applicationDirs(),
    private readonly searchPath: string = process.env['PATH'] || '/usr/local/bin:/usr/bin:/bin',
  ) {}

  /** The entry whose Exec (or TryExec) runs this executable, if any. */
  find(exe: string): DesktopEntry | null {
    this.byExe ??= this.load();
    let real = exe;
    try {
      real = realpathSync(exe);
    } catch {
      // gone, or not ours to see: compare the path as it is
    }
    return this.byExe.get(real) ?? this.byExe.get(exe) ?? null;
  }

  /** Forget what was read (a program was installed meanwhile). */
  reload(): void {
    this.byExe = null;
  }

  private load(): Map<string, DesktopEntry> {
    const out = new Map<string, DesktopEntry>();
    let seen = 0;
    for (const dir of this.dirs) {
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => n.endsWith('.desktop'));
      } catch {
        continue;
      }
      for (const name of names) {
        if (++seen > MAX_ENTRIES) return out;
        const file = join(dir, name);
        let text: string;
        try {
          if (statSync(file).size > MAX_ENTRY_BYTES) continue;
          text = readFileSync(file, 'utf8');
        } catch {
          continue;
        }
        const keys = parseDesktopEntry(text);
        if (keys.get('Type') !== 'Application' || keys.get('NoDisplay') === 'true' || !keys.get('Name')) continue;
        const entry: DesktopEntry = { name: keys.get('Name')!, icon: keys.get('Icon') || null, file };
        for (const key of ['TryExec', 'Exec']) {
          const program = execProgram(keys.get(key) ?? '');
          const exe = program === null ? null : resolveProgram(program, this.searchPath);
          // The user's own entries come first and win.
          if (exe !== null && !out.has(exe)) out.set(exe, entry);
        }
      }
    }
    return out;
  }
}
