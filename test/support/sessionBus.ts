// A private session bus for one test: dbus-daemon --session started by the test, with its own
// address; stop() ends it. Nothing reaches the desktop's own session bus.
import { spawn, type ChildProcess } from 'node:child_process';

export class PrivateSessionBus {
  private constructor(
    private readonly child: ChildProcess,
    readonly address: string,
  ) {}

  static async start(): Promise<PrivateSessionBus> {
    const child = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1', '--nopidfile'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const address = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('dbus-daemon printed no address within 5 s')), 5000);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const nl = out.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(out.slice(0, nl).trim());
        }
      });
      child.once('exit', (code) => reject(new Error(`dbus-daemon exited (${code})`)));
    });
    return new PrivateSessionBus(child, address);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}
