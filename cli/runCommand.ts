// `bastion run`: helper and service together in the foreground, for a user trying Bastion.
// Each runs as its own child process, exactly as the two systemd units would run them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Command } from 'commander';
import { lchownSync, lstatSync, mkdirSync } from 'node:fs';
import { DEFAULT_STATE_DIR } from '../common/history.js';
import { groupId } from '../common/system.js';
import { DEFAULTS } from './defaults.js';
import { intOption } from './run.js';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run the helper and the policy service together in the foreground')
    .option('--config <path>', 'config.json', DEFAULTS.configPath)
    .option('--rules <path>', 'rules.json', DEFAULTS.rulesPath)
    .option('--queue <n>', 'NFQUEUE number', intOption(0, 65535), DEFAULTS.queueNum)
    .option('--endpoint <ipc>', 'ZeroMQ endpoint between the two', DEFAULTS.endpoint)
    .option('--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath)
    .option('--mode <mode>', 'learning|enforcement (overrides config.json)')
    .option('--fail-closed', 'drop when the service is absent or late')
    .option('--state-dir <dir>', 'the decision history and the last good rules and config (what `bastion log` reads)', DEFAULT_STATE_DIR)
    .action(
      (opts: { config: string; rules: string; queue: number; endpoint: string; socket: string; mode?: string; failClosed?: boolean; stateDir: string }) => {
        const stateError = prepareStateDir(opts.stateDir);
        if (stateError) process.stderr.write(`bastion run: ${stateError}: no decision history this run\n`);
        const self = [...process.execArgv, process.argv[1]!];
        const children: ChildProcess[] = [];
        const start = (args: string[]): ChildProcess => {
          const child = spawn(process.execPath, [...self, ...args], { stdio: 'inherit' });
          children.push(child);
          child.on('exit', (code, signal) => {
            if (!stopping) {
              process.stderr.write(`bastion ${args[0]} exited (${signal ?? code}); stopping\n`);
              stop();
            }
          });
          return child;
        };
        let stopping = false;
        const stop = (): void => {
          if (stopping) return;
          stopping = true;
          for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
          let left = children.filter((c) => c.exitCode === null).length;
          if (left === 0) process.exit(0);
          for (const c of children) c.once('exit', () => --left === 0 && process.exit(0));
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        process.on('SIGHUP', () => children[1]?.kill('SIGHUP'));

        // Both children run as we do: the service's user is ours.
        const us = String(process.getuid?.() ?? 0);
        start(['helper', '--queue', String(opts.queue), '--endpoint', opts.endpoint, '--service-user', us, ...(opts.failClosed ? ['--fail-closed'] : [])]);
        start([
          'daemon',
          '--config',
          opts.config,
          '--rules',
          opts.rules,
          '--endpoint',
          opts.endpoint,
          '--socket',
          opts.socket,
          '--state-dir',
          opts.stateDir,
          ...(opts.mode ? ['--mode', opts.mode] : []),
        ]);
      },
    );
}

/**
 * The state directory as the package's unit has it (StateDirectory=bastion, 0750, group
 * bastion when it exists), so `bastion log` finds this run's decisions. Never through a symlink.
 */
function prepareStateDir(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    const st = lstatSync(dir);
    if (!st.isDirectory()) return `${dir} is not a directory`;
    const gid = groupId('bastion');
    if (gid !== null && st.uid === 0 && st.gid !== gid) {
      // lchown: the path was just checked to be a directory, not a link.
      lchownSync(dir, 0, gid);
    }
    return null;
  } catch (err) {
    return `cannot prepare ${dir}: ${err instanceof Error ? err.message : String(err)}`;
  }
}
