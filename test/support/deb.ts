// Builds the Debian package for the package tests (scripts/build-deb.sh: dpkg-buildpackage in
// a copy of the tree). BASTION_DEB names an already built .deb to check instead.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './bastion.js';

export function buildDeb(outDir: string): string {
  const prebuilt = process.env['BASTION_DEB'];
  if (prebuilt) return prebuilt;
  const started = Date.now();
  const deb = execFileSync('sh', [join(REPO, 'scripts', 'build-deb.sh'), outDir], { encoding: 'utf8', cwd: REPO }).trim();
  process.stderr.write(`${deb} built in ${Math.round((Date.now() - started) / 1000)} s\n`);
  return deb;
}
