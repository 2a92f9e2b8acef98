// `bastion run`: helper and service together in the foreground, for a user trying Bastion.
// Each runs as its own child process, exactly as the two systemd units would run them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Command } from 'commander';
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
    .action((opts: { config: string; rules: string; queue: number; endpoint: string; socket: string; mode?: string; failClosed?: boolean }) => {
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
      start([
        'helper', '--queue', String(opts.queue), '--endpoint', opts.endpoint, '--service-user', us,
        ...(opts.failClosed ? ['--fail-closed'] : []),
      ]);
      start([
        'daemon', '--config', opts.config, '--rules', opts.rules, '--endpoint', opts.endpoint, '--socket', opts.socket,
        ...(opts.mode ? ['--mode', opts.mode] : []),
      ]);
    });
}
