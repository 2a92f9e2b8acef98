// Trims the production node_modules (after `npm prune --omit=dev`) to what the program loads
// at run time:
// - only the packages reached from package.json's dependencies, not following the edges in
//   NOT_AT_RUN_TIME (a dependency a package declares but uses only when it is built or
//   installed, or in a command-line tool of its own that we never run);
// - from each, only JavaScript, JSON and addons (.node), plus its license files (its license
//   requires them; debian/copyright points to them); no tests, examples, benchmarks, docs,
//   TypeScript sources or declarations, source maps, dotfiles or dot-directories, and the
//   files in NOT_LOADED;
// - zeromq's prebuilt addons: only those its loader can pick here (its manifest's entries for
//   linux, this arch, glibc); sqlite3: only the addon debian/rules built against libsqlite3;
// - only scripts (a #! first line) keep an execute bit.
// What remains is checked by test/debian.test.ts against an allowlist, and loaded from the
// unpacked package there.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

const modules = process.argv[2];
if (!modules) throw new Error('usage: node debian/prune-modules.mjs NODE_MODULES_DIR');
const rel = (path) => relative(modules, path).split(sep).join('/');

/** package -> dependencies it declares that are never loaded when the program runs. */
const NOT_AT_RUN_TIME = {
  // protobufjs lists @types/node for TypeScript users; undici-types comes with it.
  protobufjs: ['@types/node'],
  // prebuild-install downloads a prebuilt addon at install time, and tar unpacks it (ours is
  // built by debian/rules); node-addon-api is C++ headers for building the addon.
  sqlite3: ['prebuild-install', 'tar', 'node-addon-api'],
  zeromq: ['node-addon-api'],
  // Used by bin.js only, the pino-pretty command; we use pino-pretty as a library.
  'pino-pretty': ['help-me', 'joycon', 'minimist', 'strip-json-comments'],
  // The desktop agent's D-Bus client: event-stream only for unixexec: bus addresses (never a
  // session bus's), hexy and minimist only for its dbus2js command.
  '@homebridge/dbus-native': ['event-stream', 'hexy', 'minimist'],
};

/** package -> the only files it needs (paths in the package), when that is simpler to say. */
const ONLY = {
  // zeromq requires cmake-ts/build/loader (finds its addon); the rest is cmake-ts's build tool.
  'cmake-ts': ['package.json', 'build/loader.js', 'build/loader.mjs'],
};

/** package -> files and directories (paths in the package) that nothing loads at run time. */
const NOT_LOADED = {
  // Browser bundles; the postinstall script.
  protobufjs: ['dist', 'scripts'],
  // The pino command, the browser build, the website, release scripts.
  pino: ['bin.js', 'browser.js', 'build', 'docsify'],
  'pino-pretty': ['bin.js', 'benchmark.js', 'help'],
  'thread-stream': ['bench.js'],
  // Build scripts, C++ sources, TypeScript declarations for TypeScript 3.7, CMake's package file.
  zeromq: ['script', 'src', 'lib/ts3.7', 'vcpkg.json'],
  // The bundled SQLite sources (ours links Debian's libsqlite3), C++ sources, build files.
  sqlite3: ['deps', 'src'],
  '@pinojs/redact': ['scripts'],
  // A script that checks sonic-boom by hand.
  'sonic-boom': ['check.js'],
  // The dbus2js command.
  '@homebridge/dbus-native': ['bin'],
};

const LICENSE = /^(licen[cs]e|copying|notice)([-._].*)?$/i;
const RUNTIME_FILE = /\.(js|cjs|mjs|json|node)$/;
const NOT_RUNTIME_FILE = /(^(test|bench|benchmark|example)([-.].*)?\.[cm]?js|\.(test|spec|bench)\.[cm]?js|^tsconfig.*\.json|^eslint\.config\.[cm]?js|^package-lock\.json)$/;
const NOT_RUNTIME_DIR = /^(\..*|tests?|__tests__|fixtures|examples?|bench|benchmarks?|docs?)$/;

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Where `name`, required from the package in `dir`, is found (Node's node_modules lookup). */
function resolvePackage(name, dir) {
  for (let at = dir; ; at = dirname(at)) {
    const candidate = join(at, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (at === dirname(modules) || at === dirname(at)) return null;
  }
}

// 1. The packages the program runs on.
const runtime = new Set();
function visit(dir) {
  if (runtime.has(dir)) return;
  runtime.add(dir);
  const pkg = readJson(join(dir, 'package.json'));
  const skip = NOT_AT_RUN_TIME[pkg.name] ?? [];
  for (const dep of skip) {
    if (!(dep in (pkg.dependencies ?? {}))) {
      throw new Error(`${pkg.name} no longer depends on ${dep}: update NOT_AT_RUN_TIME in debian/prune-modules.mjs`);
    }
  }
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    if (skip.includes(dep)) continue;
    const found = resolvePackage(dep, dir);
    if (!found) throw new Error(`${pkg.name} depends on ${dep}, which is not in ${modules}`);
    visit(found);
  }
}
const top = readJson(join(dirname(modules), 'package.json'));
for (const dep of Object.keys(top.dependencies ?? {})) {
  const found = resolvePackage(dep, dirname(modules));
  if (!found) throw new Error(`package.json depends on ${dep}, which is not in ${modules}`);
  visit(found);
}

// 2. Everything else in node_modules goes (the others, .bin's links, npm's .package-lock.json).
const dropped = [];
function sweep(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name.startsWith('@') && statSync(path).isDirectory()) {
      sweep(path);
    } else if (runtime.has(path)) {
      if (existsSync(join(path, 'node_modules'))) sweep(join(path, 'node_modules'));
    } else {
      if (existsSync(join(path, 'package.json'))) dropped.push(rel(path));
      rmSync(path, { recursive: true, force: true });
    }
  }
  if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true });
}
sweep(modules);

// 3. zeromq: of its prebuilt addons, the one its loader (cmake-ts/build/loader) loads here. The
// loader takes the manifest's entries for this os, arch and libc and tries them newest Node ABI
// first (all are N-API, so any of them runs on any Node); the next ones are tried only when
// that one fails to load. An addon that needs the same or newer glibc, libstdc++ and C++ ABI
// symbol versions as the first cannot load where the first does not, so it is never loaded
// and goes. The manifest is rewritten to list what is kept.
const zmqBuild = join(modules, 'zeromq', 'build');
const manifest = readJson(join(zmqBuild, 'manifest.json'));
const candidates = Object.entries(manifest)
  .map(([key, file]) => ({ key, file, config: JSON.parse(key), path: join(zmqBuild, ...file.split(/[\\/]/)) }))
  .filter(({ config }) => config.os === 'linux' && config.arch === process.arch && config.libc === 'glibc')
  .sort((a, b) => (b.config.abi ?? 0) - (a.config.abi ?? 0));
if (candidates.length === 0) throw new Error(`zeromq ships no addon for linux ${process.arch} glibc`);
for (const { path } of candidates) if (!existsSync(path)) throw new Error(`zeromq's manifest lists ${path}, which is missing`);
function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}
/** The newest GLIBC_, GLIBCXX_ and CXXABI_ symbol version the shared object needs. */
function neededVersions(path) {
  const newest = {};
  for (const [, ns, v] of execFileSync('objdump', ['-T', path], { encoding: 'utf8' }).matchAll(/\((GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)/g)) {
    if (!newest[ns] || compareVersions(v, newest[ns]) > 0) newest[ns] = v;
  }
  return newest;
}
const [first, ...rest] = candidates;
const firstNeeds = neededVersions(first.path);
const keepAddons = [first, ...rest.filter(({ path }) => {
  const needs = neededVersions(path);
  return !Object.entries(firstNeeds).every(([ns, v]) => needs[ns] !== undefined && compareVersions(needs[ns], v) >= 0);
})];
function pruneAddons(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) pruneAddons(path);
    else if (name.endsWith('.node') && !keepAddons.some((a) => a.path === path)) rmSync(path);
  }
}
pruneAddons(zmqBuild);
writeFileSync(join(zmqBuild, 'manifest.json'), JSON.stringify(Object.fromEntries(keepAddons.map(({ key, file }) => [key, file]))));

// 4. sqlite3: only the addon built by debian/rules, not its build tree.
const sqliteAddon = join(modules, 'sqlite3', 'build', 'Release', 'node_sqlite3.node');
if (!existsSync(sqliteAddon)) throw new Error(`${sqliteAddon} is missing: sqlite3 was not built`);
function pruneBuild(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) pruneBuild(path);
    else if (path !== sqliteAddon) rmSync(path);
  }
}
pruneBuild(join(modules, 'sqlite3', 'build'));

// 5. In each package, only what runs (and its license).
function startsWithShebang(path) {
  const fd = openSync(path, 'r');
  try {
    const two = Buffer.alloc(2);
    return readSync(fd, two, 0, 2, 0) === 2 && two.toString('latin1') === '#!';
  } finally {
    closeSync(fd);
  }
}
function tidy(pkgDir, dir, only) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const inPkg = relative(pkgDir, path).split(sep).join('/');
    const st = statSync(path);
    if (st.isDirectory()) {
      if (dir === pkgDir && name === 'node_modules') continue; // packages of their own
      if (NOT_RUNTIME_DIR.test(name)) rmSync(path, { recursive: true });
      else tidy(pkgDir, path, only);
      continue;
    }
    const isLicense = dir === pkgDir && LICENSE.test(name);
    const keep = isLicense || (only ? only.includes(inPkg) : RUNTIME_FILE.test(name) && !NOT_RUNTIME_FILE.test(name) && !name.startsWith('.'));
    if (!keep) rmSync(path);
    else if (st.mode & 0o111 && !name.endsWith('.node') && !startsWithShebang(path)) chmodSync(path, st.mode & ~0o111);
    else if (!(st.mode & 0o111) && startsWithShebang(path)) chmodSync(path, st.mode | 0o755);
  }
}
function removeEmptyDirs(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) removeEmptyDirs(path);
  }
  if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true });
}
for (const pkgDir of runtime) {
  const { name } = readJson(join(pkgDir, 'package.json'));
  for (const path of NOT_LOADED[name] ?? []) {
    if (!existsSync(join(pkgDir, path))) throw new Error(`${name} has no ${path}: update NOT_LOADED in debian/prune-modules.mjs`);
    rmSync(join(pkgDir, path), { recursive: true });
  }
  tidy(pkgDir, pkgDir, ONLY[name]);
}
removeEmptyDirs(modules);
for (const path of [...keepAddons.map((a) => a.path), sqliteAddon]) if (!existsSync(path)) throw new Error(`${path} was pruned`);

console.log(`runtime packages: ${[...runtime].map(rel).sort().join(', ')}`);
console.log(`dropped (not loaded at run time): ${dropped.sort().join(', ') || 'none'}`);
console.log(`zeromq addons kept: ${keepAddons.map((a) => a.file).join(', ')} (of ${candidates.map((a) => a.file).join(', ')})`);
