#!/usr/bin/env node
// Generates common/generated/bus.ts from proto/bastion.proto: a TypeScript type for every message,
// every enum as a const object by its proto names, and the Envelope codec (protobufjs's, built
// from the descriptor the file embeds, so nothing reads the .proto at run time).
//
// Why our own generator over protobufjs's reflection rather than protobufjs-cli (pbjs/pbts): the
// codec stays the one protobufjs already runs here (same bytes on the wire), the output is one
// strictly typed TypeScript file that passes our linter and formatter as it is, and no build-only
// dependency tree (pbts needs jsdoc) comes with it. It covers what the bus uses (scalars,
// bytes, enums, messages, repeated fields, one oneof per message) and refuses anything else.
//
//   node scripts/gen-wire.mjs            writes common/generated/bus.ts
//   node scripts/gen-wire.mjs --out F    writes F instead
//   node scripts/gen-wire.mjs --check    fails when common/generated/bus.ts (or --out F) is not what it would write
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { argv, exit, stderr } from 'node:process';
import { fileURLToPath } from 'node:url';
import prettier from 'prettier';
import protobuf from 'protobufjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const PROTO = join(repo, 'proto', 'bastion.proto');
const OUTPUT = join(repo, 'common', 'generated', 'bus.ts');
/** The message every bus frame is (proto/bastion.proto says so). */
const FRAME = 'Envelope';

// uint64 fields are plain numbers: the generated module turns protobufjs's Long support off.
const SCALARS = {
  double: 'number',
  float: 'number',
  int32: 'number',
  uint32: 'number',
  sint32: 'number',
  fixed32: 'number',
  sfixed32: 'number',
  int64: 'number',
  uint64: 'number',
  sint64: 'number',
  fixed64: 'number',
  sfixed64: 'number',
  bool: 'boolean',
  string: 'string',
  bytes: 'Uint8Array',
};

/** A proto comment as a JSDoc block (empty when there is none). */
function doc(comment, indent = '') {
  if (!comment) return '';
  const lines = comment.replaceAll('*/', '*\\/').split('\n');
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`.trimEnd()).join('\n')}\n${indent} */\n`;
}

/** A nested type's TypeScript name: Hello.Role -> Hello_Role (protobuf-es's way). */
function tsName(reflected, pkg) {
  return reflected.fullName.slice(pkg.fullName.length + 1).replaceAll('.', '_');
}

function fieldType(field, pkg) {
  if (field.map) throw new Error(`${field.fullName}: map fields are not supported by this generator`);
  const resolved = field.resolvedType;
  let type;
  if (resolved instanceof protobuf.Enum) type = 'number';
  else if (resolved instanceof protobuf.Type) type = tsName(resolved, pkg);
  else if (field.type in SCALARS) type = SCALARS[field.type];
  else throw new Error(`${field.fullName}: type ${field.type} is not supported by this generator`);
  if (field.repeated) return `${type}[]`;
  // A message field absent from a frame decodes as null.
  return resolved instanceof protobuf.Type ? `${type} | null` : type;
}

function fieldDoc(field, pkg) {
  const parts = [];
  if (field.comment) parts.push(field.comment);
  // Enums are open in proto3: any number may arrive, so the field is a number.
  if (field.resolvedType instanceof protobuf.Enum) parts.push(`Values from ${tsName(field.resolvedType, pkg)}.`);
  return parts.join('\n');
}

function emitEnum(e, pkg) {
  const name = tsName(e, pkg);
  const values = Object.entries(e.values)
    .map(([key, n]) => `${doc(e.comments[key], '  ')}  ${key}: ${n},`)
    .join('\n');
  return `${doc(e.comment)}export const ${name} = {\n${values}\n} as const;\nexport type ${name} = (typeof ${name})[keyof typeof ${name}];\n`;
}

function emitMessage(t, pkg) {
  const name = tsName(t, pkg);
  if (t.oneofsArray.length > 1) throw new Error(`${t.fullName}: more than one oneof is not supported by this generator`);
  const oneof = t.oneofsArray[0];
  const plain = t.fieldsArray.filter((f) => !f.partOf);
  const body = plain.map((f) => `${doc(fieldDoc(f, pkg), '  ')}  ${f.name}: ${fieldType(f, pkg)};`).join('\n');
  if (!oneof) return `${doc(t.comment)}export interface ${name} {\n${body}\n}\n`;
  // A oneof: one member set, named by the virtual field (protobufjs sets it on decoded messages).
  const members = oneof.fieldsArray.map((f) => {
    if (f.repeated) throw new Error(`${f.fullName}: a repeated oneof member is not possible`);
    const type = fieldType(f, pkg).replace(/ \| null$/, '');
    return `{ ${oneof.name}?: '${f.name}'; ${f.name}: ${type} }`;
  });
  members.push(`{ ${oneof.name}?: undefined }`);
  const shared = body ? `${doc(t.comment)}export interface ${name}Fields {\n${body}\n}\n` : '';
  const union = members.map((m) => `  | ${shared ? `(${name}Fields & ${m})` : m}`).join('\n');
  return `${shared ? '' : doc(t.comment)}export type ${name} =\n${union};\n`;
}

/** Every type and enum of the package, nested ones after their parent, in file order. */
function walk(ns, out) {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Enum) out.enums.push(nested);
    else if (nested instanceof protobuf.Type) {
      out.types.push(nested);
      walk(nested, out);
    } else if (nested instanceof protobuf.Namespace) walk(nested, out);
  }
  return out;
}

async function generate() {
  const root = new protobuf.Root();
  // `//` comments become the generated types' documentation; a trailing one describes its field.
  root.loadSync(PROTO, { alternateCommentMode: true, preferTrailingComment: true });
  root.resolveAll();
  const pkgs = root.nestedArray.flatMap(function leaf(ns) {
    const inner = ns.nestedArray.filter((n) => n instanceof protobuf.Namespace && !(n instanceof protobuf.Type));
    return inner.length === 0 ? [ns] : inner.flatMap(leaf);
  });
  if (pkgs.length !== 1) throw new Error(`expected one package in ${PROTO}, found ${pkgs.length}`);
  const pkg = pkgs[0];
  const { enums, types } = walk(pkg, { enums: [], types: [] });
  const frame = pkg.lookupType(FRAME);
  // The descriptor without comments: the codec needs none, and the file stays small.
  const descriptor = JSON.stringify(root.toJSON({ keepComments: false }));
  const source = `// Generated by scripts/gen-wire.mjs from ${relative(repo, PROTO)}: do not edit, run \`npm run gen:wire\`.
// The bus contract as TypeScript: each message's type, each enum by its proto names, and the
// ${FRAME} codec. Only common/wire.ts imports it, to convert to and from the domain types.
import protobuf from 'protobufjs';

// ---- enums ----

${enums.map((e) => emitEnum(e, pkg)).join('\n')}
// ---- messages ----

${types.map((t) => emitMessage(t, pkg)).join('\n')}
// ---- the ${FRAME} codec ----

const descriptor = ${descriptor};

// uint64 fields as plain numbers (the types above say number): start times and counters fit in 2^53.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();
const frameType = protobuf.Root.fromJSON(descriptor).lookupType('${frame.fullName.slice(1)}');

/** Encodes straight from a plain object: fromObject's validation pass would double the cost. */
export function encode${FRAME}(message: ${FRAME}): Uint8Array {
  return frameType.encode(message).finish();
}

/**
 * Decodes one frame; throws on bytes that are no ${FRAME}. Unset fields read as their defaults
 * (from the message's prototype), absent messages as null.
 */
export function decode${FRAME}(frame: Uint8Array): ${FRAME} {
  return frameType.decode(frame) as unknown as ${FRAME};
}
`;
  const options = (await prettier.resolveConfig(OUTPUT)) ?? {};
  return prettier.format(source, { ...options, filepath: OUTPUT });
}

async function main(args) {
  const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : OUTPUT;
  if (!out) throw new Error('--out needs a file');
  const generated = await generate();
  if (args.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(out, 'utf8');
    } catch {
      // missing: stale
    }
    if (current !== generated) {
      stderr.write(`${relative(repo, out)} is not what ${relative(repo, PROTO)} generates: run \`npm run gen:wire\` and commit it\n`);
      exit(1);
    }
    return;
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, generated);
}

await main(argv.slice(2));
