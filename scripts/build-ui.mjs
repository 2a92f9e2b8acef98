// Bundles the control panel (ui/panel) into dist/ui: one script, one style sheet, the page and the
// icon. Everything the page uses is in these files; the panel server fetches nothing else.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2] ?? join(root, 'dist', 'ui');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, 'ui', 'panel', 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: join(out, 'panel.js'),
  legalComments: 'none',
  logLevel: 'warning',
});
const css = [join(root, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), join(root, 'ui', 'panel', 'panel.css')]
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n');
writeFileSync(join(out, 'panel.css'), css);
copyFileSync(join(root, 'ui', 'panel', 'index.html'), join(out, 'index.html'));
copyFileSync(join(root, 'ui', 'bastion-firewall.svg'), join(out, 'icon.svg'));
