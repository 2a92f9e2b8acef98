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
