// Host names as the firewall shows and matches them: learned from DNS answers by the helper,
// written in `@host:` rules by people. One grammar for both, strict enough that a name is safe
// to print on a terminal or in a journal line (letters, digits, '-', '_' and dots only).

/** RFC 1035: a name is at most 253 characters in text form, a label at most 63. */
const MAX_NAME = 253;
// A label: letters, digits, '_' (SRV-style names) and inner '-'; upper case is folded first.
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const WILDCARD = '*.';

/** The name in lower case without a final dot, or null when it is not a host name. */
export function normalizeHostName(text: string): string | null {
  if (text.length === 0 || text.length > MAX_NAME + 1) return null;
  let name = text.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_NAME) return null;
  for (const label of name.split('.')) if (!LABEL.test(label)) return null;
  return name;
}

/** A rule's host pattern, `name` or `*.suffix`, normalized like a name; null when invalid. */
export function normalizeHostPattern(text: string): string | null {
  if (text.startsWith(WILDCARD)) {
    const suffix = normalizeHostName(text.slice(WILDCARD.length));
    return suffix === null ? null : WILDCARD + suffix;
  }
  return normalizeHostName(text);
}

/**
 * The `*.suffix` patterns that could match `name`, most specific first:
 * "a.b.example.org" -> "*.b.example.org", "*.example.org", "*.org". A pattern never matches
 * the bare suffix itself ("*.example.org" does not match "example.org").
 */
export function wildcardsFor(name: string): string[] {
  const out: string[] = [];
  for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) out.push(WILDCARD + name.slice(dot + 1));
  return out;
}
