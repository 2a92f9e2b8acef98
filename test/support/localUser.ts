// Unprivileged local users for attack tests: each test makes its own with useradd and removes
// it again (also when the test fails), and runs an attacker's commands as that user inside a
// test network namespace: root only enters the namespace, setpriv then drops every privilege.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let counter = 0;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class LocalUser {
  /** Process groups of the commands started as this user, killed by remove(). */
  private readonly groups = new Set<number>();

  private constructor(
    readonly name: string,
    readonly uid: number,
    /** A directory of this user's own (mode 0700) for the programs it runs. */
    readonly home: string,
  ) {}

  /** A new user with no password, no groups but its own, and a private scratch directory. */
  static create(): LocalUser {
    const name = `bst-atk-${process.pid % 100000}-${counter++}`;
    execFileSync('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/bin/sh', '--user-group', name], { stdio: 'pipe' });
    let home = '';
    try {
      const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
      // Under a world-searchable parent (mkdtemp's 0700 would lock the user out).
      const parent = mkdtempSync(join(tmpdir(), 'bastion-attack-'));
      chmodSync(parent, 0o755);
      home = join(parent, name);
      execFileSync('install', ['-d', '-m', '0700', '-o', name, '-g', name, home]);
      return new LocalUser(name, uid, home);
    } catch (err) {
      if (home !== '') rmSync(join(home, '..'), { recursive: true, force: true });
      execFileSync('userdel', [name], { stdio: 'pipe' });
      throw err;
    }
  }

  /**
   * Runs `sh -c script` as this user in network namespace `netns`, without blocking the event
   * loop (the test keeps reading the firewall's logs meanwhile). Killed after timeoutMs.
   */
  run(netns: string, script: string, timeoutMs = 30_000): Promise<RunResult> {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, 'setpriv', `--reuid=${this.uid}`, `--regid=${this.name}`, '--clear-groups', '--reset-env', 'sh', '-c', script],
      // Its own process group (ip and setpriv exec, so the group is the script's): remove()
      // ends what the script left running in the background.
      { cwd: this.home, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    if (child.pid !== undefined) this.groups.add(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    return new Promise((resolve) =>
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      }),
    );
  }

  /** Ends what its commands left running, then removes the user and its directory. */
  async remove(): Promise<void> {
    for (const group of this.groups) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      // userdel refuses while a killed process of the user is still exiting.
      for (let attempt = 0; ; attempt++) {
        try {
          execFileSync('userdel', [this.name], { stdio: 'pipe' });
          break;
        } catch (err) {
          if (attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      rmSync(join(this.home, '..'), { recursive: true, force: true });
    }
  }
}
