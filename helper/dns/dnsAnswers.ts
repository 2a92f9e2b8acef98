// Which addresses a DNS answer gives for which name. The input is hostile by assumption (any
// server on the path can send anything), so: a cheap header check before decoding, dns-packet's
// decoder (bounds-checked, refuses forward compression pointers, so no loops) inside try/catch,
// every name checked against the host-name grammar, and fixed caps on what one answer yields.
// Only records that belong to the question are taken: the queried name and the names its
// CNAME chain leads to, so an answer cannot slip in addresses for names nobody asked about.
import { decode, type Answer } from 'dns-packet';
import { ipv4Bytes, ipv6Bytes } from '../../common/address.js';
import { normalizeHostName } from '../../common/hostName.js';

export interface LearnedAddress {
  /** 4 or 16 bytes. */
  address: Uint8Array;
  /** The name the program asked for (the question), lower case, no final dot. */
  name: string;
  ttlSeconds: number;
}

const HEADER_BYTES = 12;
const MAX_MESSAGE_BYTES = 65535;
/** Addresses taken from one answer at most; the rest are ignored. */
export const MAX_ADDRESSES_PER_ANSWER = 64;
/** CNAME links followed at most (resolvers stop at 8-16 as well). */
const MAX_CNAME_LINKS = 16;
const QR_RESPONSE = 0x80;
const OPCODE_MASK = 0x78;
const RCODE_MASK = 0x0f;

/** The addresses an answer names for its question; [] for anything else or anything malformed. */
export function addressesFromAnswer(message: Uint8Array): LearnedAddress[] {
  if (!worthDecoding(message)) return [];
  let answers: Answer[];
  let question: string;
  try {
    const packet = decode(Buffer.from(message.buffer, message.byteOffset, message.byteLength));
    const q = packet.questions?.[0];
    if (q === undefined || (q.type !== 'A' && q.type !== 'AAAA')) return [];
    question = q.name;
    answers = packet.answers ?? [];
  } catch {
    return []; // malformed: dns-packet throws on every bounds or pointer problem
  }
  const asked = normalizeHostName(question);
  if (asked === null) return [];
  const names = chainOf(asked, answers);
  const out: LearnedAddress[] = [];
  for (const a of answers) {
    if (out.length >= MAX_ADDRESSES_PER_ANSWER) break;
    if ((a.type !== 'A' && a.type !== 'AAAA') || typeof a.data !== 'string') continue;
    const owner = normalizeHostName(a.name);
    if (owner === null || !names.has(owner)) continue;
    const address = a.type === 'A' ? ipv4Bytes(a.data) : ipv6Bytes(a.data);
    if (address === null) continue;
    out.push({ address, name: asked, ttlSeconds: typeof a.ttl === 'number' ? a.ttl : 0 });
  }
  return out;
}

/** A response (QR), standard query (opcode 0), no error, exactly one question, some answers. */
function worthDecoding(m: Uint8Array): boolean {
  if (m.length < HEADER_BYTES || m.length > MAX_MESSAGE_BYTES) return false;
  const flags = m[2]!;
  if ((flags & QR_RESPONSE) === 0 || (flags & OPCODE_MASK) !== 0 || (m[3]! & RCODE_MASK) !== 0) return false;
  const questions = (m[4]! << 8) | m[5]!;
  const answers = (m[6]! << 8) | m[7]!;
  return questions === 1 && answers > 0;
}

/** The question and the names its CNAMEs lead to, in whatever order the records come. */
function chainOf(asked: string, answers: readonly Answer[]): Set<string> {
  const names = new Set([asked]);
  for (let round = 0; round < MAX_CNAME_LINKS; round++) {
    let grew = false;
    for (const a of answers) {
      if (a.type !== 'CNAME' || typeof a.data !== 'string') continue;
      const owner = normalizeHostName(a.name);
      const target = normalizeHostName(a.data);
      if (owner === null || target === null || !names.has(owner) || names.has(target)) continue;
      names.add(target);
      grew = true;
      if (names.size > MAX_CNAME_LINKS) return names;
    }
    if (!grew) break;
  }
  return names;
}
