// What /etc/resolv.conf names: the nameservers glibc asks (port 53). Read by the helper (whose
// DNS answers name addresses for rules: helper/dns/resolverTrust.ts) and by the service (DNS to
// them passes for every program: service/nameservers.ts).
import { formatAddress, ipv4Bytes, ipv6Bytes } from './address.js';

/** The `nameserver` addresses of a resolv.conf text, as formatAddress writes them. */
export function nameserversOf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const text = m[1]!.replace(/%.*$/, ''); // a link-local address's %scope
    const bytes = text.includes(':') ? ipv6Bytes(text) : ipv4Bytes(text);
    if (bytes !== null) out.push(formatAddress(bytes));
  }
  return [...new Set(out)];
}
