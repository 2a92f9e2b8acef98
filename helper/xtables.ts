// Running iptables and iptables-restore: every change of ours is one iptables-restore
// --noflush transaction (all of it or none), and every call waits for the xtables lock.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Applies `script` atomically; --noflush leaves every other chain and rule alone. */
export function xtablesRestore(bin: string, script: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // -w: wait for the xtables lock instead of failing when another program edits rules.
    const child = execFile(bin, ['-w', '5', '--noflush'], { timeout: 15000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${bin}: ${(stderr || err.message).trim()}`));
      else resolve();
    });
    child.stdin?.end(script);
  });
}

/** One iptables command on `table`; its stderr becomes the error's message. */
export async function xtables(bin: string, table: string, args: readonly string[]): Promise<{ stdout: string }> {
  try {
    return await run(bin, ['-w', '5', '-t', table, ...args], { timeout: 15000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}
