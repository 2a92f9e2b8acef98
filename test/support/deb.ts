// Builds the Debian package for the package tests (scripts/build-deb.sh: dpkg-buildpackage in
// a copy of the tree). BASTION_DEB names an already built .deb to check instead. A build is
// kept under the temporary directory, keyed by the content of the tree it was built from, so
// the package tests of one run (each file is its own process) build it once.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './bastion.js';

/** A digest of every file the package build copies (tracked and new, not ignored). */
function treeDigest(): string {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' })
    .split('\0')
    .filter(Boolean)
    .sort();
  const hash = createHash('sha256');
  for (const file of files) {
    const path = join(REPO, file);
    if (!existsSync(path) || !statSync(path).isFile()) continue;
    hash.update(file).update('\0').update(readFileSync(path)).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

export function buildDeb(): string {
  const prebuilt = process.env['BASTION_DEB'];
  if (prebuilt) return prebuilt;
  // One cache per checkout; in it, only the build of the tree as it is now.
  const cache = join(tmpdir(), `bastion-deb-cache-${createHash('sha256').update(REPO).digest('hex').slice(0, 8)}`);
  const outDir = join(cache, treeDigest());
  const built = existsSync(outDir) ? readdirSync(outDir).find((f) => f.endsWith('.deb')) : undefined;
  if (built) return join(outDir, built);
  rmSync(cache, { recursive: true, force: true });
  const started = Date.now();
  const deb = execFileSync('sh', [join(REPO, 'scripts', 'build-deb.sh'), outDir], { encoding: 'utf8', cwd: REPO }).trim();
  process.stderr.write(`${deb} built in ${Math.round((Date.now() - started) / 1000)} s\n`);
  return deb;
}
