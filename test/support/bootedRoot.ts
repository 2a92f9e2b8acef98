// A Debian 12 root booted with systemd, as a user who installs the package gets it: the root
// is made once with debootstrap and cached as a tarball, unpacked fresh for each run, the .deb
// installed with apt (Debian's own nodejs 18 and the package's dependencies from the mirror),
// then booted with systemd-nspawn in a network namespace of the test's own (TestNetwork's
// client side: the server side is the only other host it can reach).
//
// Commands run inside through `systemd-run --pipe --wait`, so they live in the container's own
// cgroup tree, where the helper's cgroup eBPF programs see them (a process merely entered with
// nsenter stays in the host's cgroup and would be invisible to them).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { TestNetwork } from './netns.js';

const MIRROR = process.env['BASTION_DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';
const CACHE_DIR = process.env['BASTION_BOOT_CACHE'] ?? '/var/cache/bastion-test';
/** What the base root holds besides minbase: an init, D-Bus (polkit), ip and curl for the checks. */
const INCLUDE = 'systemd,systemd-sysv,dbus,iproute2,curl,ca-certificates';
/** The capabilities the helper unit keeps, beyond nspawn's defaults (which lack NET_ADMIN, BPF, PERFMON). */
const CAPABILITIES = 'CAP_NET_ADMIN,CAP_BPF,CAP_PERFMON';

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 600_000, input?: string): Ran {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20, ...(input !== undefined && { input }) });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(r: Ran, what: string): Ran {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${(r.stdout + r.stderr).slice(-4000)}`);
  return r;
}

/** The cached base root, made with debootstrap when missing (about a minute). */
export function baseRootTarball(): string {
  const tarball = join(CACHE_DIR, `bookworm-minbase-${INCLUDE.replace(/[^a-z0-9]+/g, '-')}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(CACHE_DIR, { recursive: true });
  const work = mkdtempSync(join(CACHE_DIR, 'debootstrap-'));
  try {
    must(run('debootstrap', ['--variant=minbase', `--include=${INCLUDE}`, 'bookworm', work, MIRROR], 1_200_000), 'debootstrap');
    must(run('tar', ['-C', work, '-cf', `${tarball}.tmp`, '.']), 'tar');
    renameSync(`${tarball}.tmp`, tarball);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tarball;
}

export class BootedRoot {
  readonly net = TestNetwork.create();
  readonly root: string;
  private nspawn: ChildProcess | null = null;
  private nspawnLog = '';
  private initPid = 0;

  private constructor(private readonly work: string) {
    this.root = join(work, 'root');
  }

  /** A fresh root from the cache with `deb` installed by apt (through the host's network). */
  static install(deb: string): BootedRoot {
    const work = mkdtempSync(join(tmpdir(), 'bastion-boot-'));
    const booted = new BootedRoot(work);
    try {
      mkdirSync(booted.root);
      must(run('tar', ['-C', booted.root, '-xf', baseRootTarball()]), 'unpacking the base root');
      // Services with User= fail with 200/CHDIR when the root itself is not searchable.
      chmodSync(booted.root, 0o755);
      copyFileSync('/etc/resolv.conf', join(booted.root, 'etc/resolv.conf'));
      // Not /tmp: nspawn mounts a tmpfs there at boot.
      copyFileSync(deb, join(booted.root, 'root', basename(deb)));
      must(booted.chroot(`apt-get update -q && apt-get install -y -q --no-install-recommends /root/${basename(deb)}`), 'apt-get install');
    } catch (err) {
      void booted.destroy();
      throw err;
    }
    return booted;
  }

  /** A shell command in the root before it boots (apt needs the host's network here). */
  chroot(script: string): Ran {
    const outer = `mount -t proc proc "$1/proc" && exec chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -c "$2"`;
    return run('unshare', ['--mount', '--pid', '--fork', '--propagation', 'private', 'sh', '-c', outer, 'sh', this.root, script]);
  }

  /**
   * A bpf file system for the container's /sys/fs/bpf, where systemd mounts one on a machine it
   * boots (not in a container: nspawn's /sys has none), and the helper pins its chain's filters.
   */
  private get bpfFs(): string {
    return join(this.work, 'bpf');
  }

  /** Boots the root; resolves once systemd reports the system up (running or degraded). */
  async boot(): Promise<void> {
    mkdirSync(this.bpfFs);
    must(run('mount', ['-t', 'bpf', 'bpf', this.bpfFs]), 'mounting a bpf file system');
    this.nspawn = spawn(
      'systemd-nspawn',
      [
        '-q',
        '--register=no',
        '--keep-unit',
        '-b',
        '-D',
        this.root,
        `--network-namespace-path=/run/netns/${this.net.client}`,
        `--capability=${CAPABILITIES}`,
        // nspawn's own seccomp filter refuses bpf() to everything in the container.
        '--system-call-filter=bpf',
        `--bind=${this.bpfFs}:/sys/fs/bpf`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.nspawn.stdout?.setEncoding('utf8').on('data', (c: string) => (this.nspawnLog += c));
    this.nspawn.stderr?.setEncoding('utf8').on('data', (c: string) => (this.nspawnLog += c));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      this.initPid = this.findInit();
      if (this.initPid > 0) {
        const state = this.enter(['systemctl', 'is-system-running']).stdout.trim();
        if (state === 'running' || state === 'degraded') return;
      }
      if (this.nspawn.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the root did not boot: ${this.nspawnLog.slice(-3000)}`);
  }

  /** The container's systemd: nspawn's child. */
  private findInit(): number {
    const pid = this.nspawn?.pid;
    if (!pid) return 0;
    try {
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      return children.find((c) => c > 0 && existsSync(`/proc/${c}`)) ?? 0;
    } catch {
      return 0;
    }
  }

  /** A command entered into the container's namespaces (for systemctl, journalctl, files). */
  enter(argv: string[], timeoutMs = 60_000): Ran {
    return run('nsenter', this.enterArgs(argv), timeoutMs);
  }

  /**
   * A shell script run by the container's systemd as a transient service (its own cgroup in
   * the container's tree), as root or as `user`, with the exit code of the script.
   */
  sh(script: string, user?: string, timeoutMs = 120_000): Ran {
    return this.enter(transientService(script, user), timeoutMs);
  }

  /** sh() without blocking this process: for a load that runs while the test does something else. */
  shAsync(script: string, timeoutMs = 120_000): Promise<Ran> {
    const child = spawn('nsenter', this.enterArgs(transientService(script)), { stdio: ['ignore', 'pipe', 'pipe'] });
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

  /** nsenter's arguments for argv in all of the container's namespaces, with a clean environment. */
  private enterArgs(argv: string[]): string[] {
    return ['-t', String(this.initPid), '-a', '-r', '-w', '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', ...argv];
  }

  /** Starts a process in the server namespace (e.g. the listener the container's connections reach). */
  spawnServer(cmd: string, args: string[]): ChildProcess {
    return this.net.spawn(this.net.server, cmd, args);
  }

  /** Powers the container off (SIGKILL after 30 s), removes the root and the network. */
  async destroy(): Promise<void> {
    const nspawn = this.nspawn;
    if (nspawn && nspawn.exitCode === null) {
      const exited = new Promise((r) => nspawn.once('exit', r));
      nspawn.kill('SIGTERM'); // nspawn asks the container's systemd to power off
      const timer = setTimeout(() => nspawn.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    try {
      this.net.destroy();
    } finally {
      // Unmounted before the removal, which would otherwise walk into it.
      if (existsSync(this.bpfFs)) run('umount', ['-l', this.bpfFs]);
      // Mounts nspawn made are gone with its mount namespace; a chroot's /proc is unshared too.
      rmSync(this.work, { recursive: true, force: true });
    }
  }
}

/** A copy of `deb` whose version is `version`: an upgrade without a second build. */
export function repackWithVersion(deb: string, version: string, outDir: string): string {
  const tree = join(outDir, 'tree');
  rmSync(tree, { recursive: true, force: true });
  execFileSync('dpkg-deb', ['-R', deb, tree]);
  const control = join(tree, 'DEBIAN/control');
  const text = readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${version}`);
  execFileSync('sh', ['-c', 'cat > "$1"', 'sh', control], { input: text });
  const out = join(outDir, `bastion-firewall_${version}_upgrade.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-b', tree, out], { stdio: 'pipe' });
  rmSync(tree, { recursive: true, force: true });
  return out;
}

/** systemd-run's command line for a shell script as a transient service, as root or `user`. */
function transientService(script: string, user?: string): string[] {
  return [
    'systemd-run',
    '--quiet',
    '--pipe',
    '--wait',
    '--collect',
    '--service-type=exec',
    ...(user ? ['-p', `User=${user}`] : []),
    '-E',
    'LANG=C.UTF-8',
    '--',
    '/bin/sh',
    '-c',
    script,
  ];
}
