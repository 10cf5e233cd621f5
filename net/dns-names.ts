/**
 * The Supernet naming scheme (docs/dns.md §Names).
 *
 * Every Supernet has one DNS domain, derived from its id: the id's hex digits
 * without `0x` and without leading zeros, under the Supernet suffix
 * (`sn.internal` by default): Supernet 0x4711 → `4711.sn.internal`, Supernet
 * 0x0000cafebabe00050100 → `cafebabe00050100.sn.internal`. A node named `c1`
 * is `c1.4711.sn.internal`. An 80-bit id has at most 20 hex digits, so the label always
 * fits DNS's 63-byte limit. Node names follow the admin protocol's rule
 * (admin/protocol.ts LoginRequest.name): `[a-z][a-z0-9-]{0,30}`.
 *
 * Names are compared case-insensitively (RFC 4343) on their wire labels,
 * never on a dotted string, so a label that contains a dot byte can never
 * pass for two labels.
 */
import { parseSupernetId } from '../admin/ids.js';

/** Default parent of every Supernet domain: under ICANN's private-use `.internal` (2024), because `.sn` is a delegated TLD (docs/dns.md §Names). */
export const SUPERNET_DNS_SUFFIX = 'sn.internal';

/** What a node name must look like (same rule as the admin protocol). */
export const NODE_NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;

/** One label as the resolver accepts it in names it serves: LDH (RFC 1123 §2.1), 1..63 bytes. */
const LDH_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Maximum length of a domain name in presentation form without the final dot (RFC 1035 §2.3.4). */
export const MAX_NAME_TEXT = 253;

/** Thrown for a domain or name the scheme does not allow; `field` names the input. */
export class DnsNameError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'DnsNameError';
  }
}

/**
 * Parses a domain in presentation form (`4711.sn`, optional final dot,
 * any case) to its lowercase labels; throws {@link DnsNameError} naming
 * `field` for anything that is not a sequence of LDH labels.
 */
export function domainLabels(text: string, field = 'domain'): string[] {
  const t = String(text).trim().toLowerCase().replace(/\.$/, '');
  if (t.length === 0 || t.length > MAX_NAME_TEXT) {
    throw new DnsNameError(field, `${field}: expected a domain name of 1..253 characters`);
  }
  const labels = t.split('.');
  for (const l of labels) {
    if (!LDH_LABEL_RE.test(l)) {
      throw new DnsNameError(
        field,
        `${field}: ${JSON.stringify(text)} has a label that is not letters, digits and inner hyphens`,
      );
    }
  }
  return labels;
}

/**
 * The DNS domain of a Supernet: `<id hex without leading zeros>.<suffix>`.
 * Throws for an invalid id or suffix.
 */
export function supernetDomain(supernet: string, suffix = SUPERNET_DNS_SUFFIX): string {
  const id = parseSupernetId(supernet);
  const hex = BigInt(id).toString(16);
  return [hex, ...domainLabels(suffix, 'suffix')].join('.');
}

/** The fully qualified name of node `name` in `domain` (no final dot). */
export function nodeFqdn(name: string, domain: string): string {
  if (!NODE_NAME_RE.test(name)) {
    throw new DnsNameError('name', `name: ${JSON.stringify(name)} is not a valid node name`);
  }
  return `${name}.${domainLabels(domain).join('.')}`;
}

/** The `in-addr.arpa` name of an IPv4 address given as an unsigned 32-bit number. */
export function reverseName(addr: number): string {
  const a = addr >>> 0;
  return `${a & 255}.${(a >>> 8) & 255}.${(a >>> 16) & 255}.${a >>> 24}.in-addr.arpa`;
}

const OCTET_RE = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Reads the address part of a reverse name. `labels` are the lowercase
 * labels BEFORE `in-addr.arpa`, most specific first (as on the wire). Returns
 * the octets they name, most significant first (so `['5','17']` → `[17, 5]`),
 * or null if any label is not a canonical decimal octet or there are more
 * than four. RFC 2317 classless names (`0/25.17.71.10`) are not octets and
 * yield null.
 */
export function reverseOctets(labels: readonly string[]): number[] | null {
  if (labels.length > 4) return null;
  const out: number[] = [];
  for (let i = labels.length - 1; i >= 0; i--) {
    const l = labels[i]!;
    if (!OCTET_RE.test(l)) return null;
    const n = Number(l);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

/** True if `labels` ends with `suffix` (both lowercase label arrays). */
export function endsWithLabels(labels: readonly string[], suffix: readonly string[]): boolean {
  if (labels.length < suffix.length) return false;
  const d = labels.length - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (labels[d + i] !== suffix[i]) return false;
  return true;
}
