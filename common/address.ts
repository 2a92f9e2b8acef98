// Text forms of IP addresses, shared by the helper (logs) and the service (rules, GUI).

/**
 * Text for an address: a dotted quad for 4 bytes, RFC 5952 text for 16 bytes, '' for any other
 * length. Not on the per-packet path: call it only when a record is built or logged.
 */
export function formatAddress(addr: Uint8Array): string {
  if (addr.length === 4) return dottedQuad(addr, 0);
  if (addr.length !== 16) return '';
  if (isIpv4Mapped(addr)) return `::ffff:${dottedQuad(addr, 12)}`;

  // RFC 5952 4.2: compress the longest run of two or more zero groups, the leftmost on ties.
  let bestStart = -1;
  let bestLength = 1;
  let runStart = -1;
  for (let group = 0; group < 8; group++) {
    if (group16(addr, group) !== 0) {
      runStart = -1;
      continue;
    }
    if (runStart < 0) runStart = group;
    if (group - runStart + 1 > bestLength) {
      bestStart = runStart;
      bestLength = group - runStart + 1;
    }
  }

  let text = '';
  let group = 0;
  while (group < 8) {
    if (group === bestStart) {
      text += '::';
      group += bestLength;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += group16(addr, group).toString(16);
    group++;
  }
  return text;
}

function dottedQuad(addr: Uint8Array, at: number): string {
  return `${addr[at] ?? 0}.${addr[at + 1] ?? 0}.${addr[at + 2] ?? 0}.${addr[at + 3] ?? 0}`;
}

/** ::ffff:0:0/96 (RFC 4291 2.5.5.2), which RFC 5952 section 5 writes with a dotted quad. */
function isIpv4Mapped(addr: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

function group16(addr: Uint8Array, group: number): number {
  return ((addr[group * 2] ?? 0) << 8) | (addr[group * 2 + 1] ?? 0);
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Dotted-quad text to 4 bytes; null when it is not one. */
export function ipv4Bytes(text: string): Uint8Array | null {
  const m = V4.exec(text);
  if (m === null) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = Number(m[i + 1]);
    if (n > 255) return null;
    bytes[i] = n;
  }
  return bytes;
}

/** RFC 4291 text (with "::" and an optional dotted-quad tail) to 16 bytes. */
export function ipv6Bytes(text: string): Uint8Array | null {
  if (text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = ipv4Bytes(piece);
        if (v4 === null) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}
