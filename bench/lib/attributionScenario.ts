// The attribution scenario: one-shot processes under distinct names, each connecting once.
// Delegates to bench/attribution.ts (the standalone attribution benchmark) when present.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestNetwork } from '../../test/support/netns.js';

export async function runAttribution(_net: TestNetwork, _dir: string, count: number): Promise<unknown> {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'attribution.ts');
  if (!existsSync(script)) return { skipped: 'bench/attribution.ts not present' };
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  await new Promise((r) => child.once('exit', r));
  return { output: out.trim() };
}
