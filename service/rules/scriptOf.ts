// Which script an interpreter runs, from its argv (/proc/PID/cmdline) and working directory,
// for `script` rules (docs/rules.md). The process can rewrite its own argv and environment
// (PYTHONPATH, NODE_OPTIONS, ...) can make the interpreter run other code first: a script rule
// tells well-behaved programs apart, it does not prove what code runs (docs/SECURITY.md).
import { posix } from 'node:path';

interface Interpreter {
  /** Options that take the next argument as their value. */
  valued: readonly string[];
  /** Options after which the program is not a script file (inline code, a module, stdin). */
  noScript: readonly string[];
}

const PYTHON: Interpreter = { valued: ['-W', '-X', '--check-hash-based-pycs'], noScript: ['-c', '-m', '-'] };
const NODE: Interpreter = {
  valued: ['-r', '--require', '--import', '--loader', '--experimental-loader', '--input-type', '--conditions', '-C'],
  noScript: ['-e', '--eval', '-p', '--print', '-i', '--interactive', '-'],
};
const SHELL: Interpreter = { valued: ['-o', '+o', '-O', '+O', '--rcfile', '--init-file'], noScript: ['-c', '-s', '-i', '-'] };
const PERL: Interpreter = { valued: ['-I', '-M', '-m', '-x'], noScript: ['-e', '-E', '-'] };
const RUBY: Interpreter = { valued: ['-I', '-r', '-C', '-E', '--encoding'], noScript: ['-e', '-'] };

function interpreterOf(exe: string): Interpreter | 'java' | null {
  const name = posix.basename(exe);
  if (/^python[23]?(\.[0-9]+)?$/.test(name)) return PYTHON;
  if (name === 'node' || name === 'nodejs') return NODE;
  if (name === 'sh' || name === 'bash' || name === 'dash') return SHELL;
  if (/^perl(5[.0-9]*)?$/.test(name)) return PERL;
  if (/^ruby([0-9.]+)?$/.test(name)) return RUBY;
  if (name === 'java') return 'java';
  return null;
}

/**
 * The absolute, normalized script path, or null when exe is not a known interpreter or its argv
 * names no script file (`python3 -c ...`, `java -cp ... Main`). A relative path is resolved
 * against cwd; without cwd it names nothing.
 */
export function scriptOf(exe: string, argv: readonly string[], cwd: string | undefined): string | null {
  const interpreter = interpreterOf(exe);
  if (interpreter === null) return null;
  const script = interpreter === 'java' ? jarOf(argv) : firstOperand(interpreter, argv);
  if (script === null || script === '' || script.includes('\0')) return null;
  if (script.startsWith('/')) return posix.normalize(script);
  if (cwd === undefined || !cwd.startsWith('/')) return null;
  return posix.resolve(cwd, script);
}

function firstOperand(interpreter: Interpreter, argv: readonly string[]): string | null {
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return argv[i + 1] ?? null;
    if (interpreter.noScript.includes(arg)) return null;
    // A bundled short option ending in a no-script one (python3 -uc 'code') is inline code too.
    if (/^-[A-Za-z]+$/.test(arg) && interpreter.noScript.some((o) => o.length === 2 && arg.endsWith(o[1]!))) return null;
    if (interpreter.valued.includes(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith('-') || arg.startsWith('+')) continue;
    return arg;
  }
  return null;
}

/** `java [options] -jar FILE.jar [args]`: the jar; a class name runs no file of its own. */
function jarOf(argv: readonly string[]): string | null {
  for (let i = 1; i < argv.length - 1; i++) {
    if (argv[i] === '-jar') return argv[i + 1]!;
    if (argv[i] === '-cp' || argv[i] === '-classpath' || argv[i] === '--class-path') i++;
    else if (!argv[i]!.startsWith('-')) return null;
  }
  return null;
}
