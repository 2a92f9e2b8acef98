// Trims the production node_modules for the package: zeromq ships prebuilt addons for every
// platform (and some unlisted older builds, one of them linked against musl); only those its
// loader can pick here are kept: the ones its manifest lists for linux, this arch, glibc.
// Development leftovers go too (linter and VCS files, zeromq's build scripts and sources, HTML
// docs that load scripts from the web), and only scripts keep an execute bit.
import { chmodSync, closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const modules = process.argv[2];
if (!modules) throw new Error('usage: node debian/prune-modules.mjs NODE_MODULES_DIR');

const build = join(modules, 'zeromq', 'build');
const manifest = JSON.parse(readFileSync(join(build, 'manifest.json'), 'utf8'));
const keep = new Set();
for (const [key, file] of Object.entries(manifest)) {
  const config = JSON.parse(key);
  if (config.os === 'linux' && config.arch === process.arch && config.libc === 'glibc') keep.add(join(build, file));
}
if (keep.size === 0) throw new Error(`zeromq ships no addon for linux ${process.arch} glibc`);

function prune(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      prune(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
    } else if (name.endsWith('.node') && !keep.has(path)) {
      rmSync(path);
    }
  }
}
prune(build);
for (const dir of ['script', 'src']) rmSync(join(modules, 'zeromq', dir), { recursive: true, force: true });

// sqlite3: only its built addon (linked to Debian's libsqlite3 by debian/rules) and its JS.
const sqliteAddon = join(modules, 'sqlite3', 'build', 'Release', 'node_sqlite3.node');
if (!existsSync(sqliteAddon)) throw new Error(`${sqliteAddon} is missing: sqlite3 was not built`);
for (const dir of ['deps', 'src']) rmSync(join(modules, 'sqlite3', dir), { recursive: true, force: true });
for (const name of readdirSync(join(modules, 'sqlite3', 'build'))) {
  if (name !== 'Release') rmSync(join(modules, 'sqlite3', 'build', name), { recursive: true, force: true });
}
for (const name of readdirSync(join(modules, 'sqlite3', 'build', 'Release'))) {
  if (name !== 'node_sqlite3.node') rmSync(join(modules, 'sqlite3', 'build', 'Release', name), { recursive: true, force: true });
}

const JUNK = /^(\.eslintrc.*|\.npmignore|\.gitattributes|\.editorconfig|\.prettierrc.*|\.travis\.yml|\.nycrc.*|.*\.html)$/;
function startsWithShebang(path) {
  const fd = openSync(path, 'r');
  try {
    const two = Buffer.alloc(2);
    return readSync(fd, two, 0, 2, 0) === 2 && two.toString('latin1') === '#!';
  } finally {
    closeSync(fd);
  }
}
function tidy(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) {
      if (name === '.github') rmSync(path, { recursive: true });
      else tidy(path);
    } else if (JUNK.test(name)) {
      rmSync(path);
    } else if (st.mode & 0o111 && !name.endsWith('.node') && !startsWithShebang(path)) {
      chmodSync(path, st.mode & ~0o111);
    } else if (!(st.mode & 0o111) && startsWithShebang(path)) {
      chmodSync(path, st.mode | 0o755);
    }
  }
}
tidy(modules);
for (const path of keep) if (!existsSync(path)) throw new Error(`zeromq's manifest lists ${path}, which is missing`);
rmSync(join(modules, '.package-lock.json'), { force: true });
console.log(`zeromq addons kept: ${[...keep].map((p) => relative(build, p).split(sep).join('/')).join(', ')}`);
