/**
 * IPv4 arithmetic for the test bed's underlay (design brief §7): parse a
 * subnet, hand out host addresses in order, validate addresses a test picks.
 * Pure functions, unit-tested in test/unit/testbed.test.ts.
 */

/** A parsed IPv4 subnet, e.g. 198.18.0.0/24. */
export interface Subnet {
  /** network address as an unsigned 32-bit integer */
  readonly network: number;
  /** prefix length, 1..30 (a /31 or /32 has no room for a switch of hosts) */
  readonly prefixLen: number;
  /** number of usable host addresses (network and broadcast excluded) */
  readonly size: number;
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad IPv4 text; throws naming the input when malformed. */
export function parseIPv4(text: string): number {
  const m = IPV4_RE.exec(text);
  if (!m) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i].length > 1 && m[i].startsWith('0'))) {
      throw new Error(`not an IPv4 address: ${JSON.stringify(text)} (octet ${m[i]})`);
    }
    v = v * 256 + octet;
  }
  return v;
}

/** Formats an unsigned 32-bit integer as dotted-quad text. */
export function formatIPv4(v: number): string {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`not an IPv4 value: ${v}`);
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

/** Parses `a.b.c.d/len`; the address must be the network address itself. */
export function parseSubnet(text: string): Subnet {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`subnet needs a prefix length: ${JSON.stringify(text)}`);
  const addr = parseIPv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(lenText))
    throw new Error(`bad prefix length in subnet ${JSON.stringify(text)}`);
  const prefixLen = Number(lenText);
  if (prefixLen < 1 || prefixLen > 30) {
    throw new Error(
      `subnet prefix length must be 1..30, got ${prefixLen} in ${JSON.stringify(text)}`,
    );
  }
  const mask = maskOf(prefixLen);
  if ((addr & mask) >>> 0 !== addr) {
    throw new Error(`${JSON.stringify(text)} is not a network address (host bits set)`);
  }
  return { network: addr, prefixLen, size: 2 ** (32 - prefixLen) - 2 };
}

function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** The `index`-th usable host address (0-based) of `subnet`. */
export function hostAddress(subnet: Subnet, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= subnet.size) {
    throw new Error(
      `host index ${index} does not fit in ${formatIPv4(subnet.network)}/${subnet.prefixLen} ` +
        `(${subnet.size} usable addresses)`,
    );
  }
  return formatIPv4(subnet.network + 1 + index);
}

/** True when `addr` is a usable host address of `subnet` (not network/broadcast). */
export function inSubnet(subnet: Subnet, addr: string): boolean {
  const v = parseIPv4(addr);
  const offset = v - subnet.network;
  return offset >= 1 && offset <= subnet.size;
}

/**
 * Splits `a.b.c.d` or `a.b.c.d/len` into address and prefix length, using
 * `defaultLen` when none is given. Validates both parts.
 */
export function parseHostCidr(
  text: string,
  defaultLen: number,
): { addr: string; prefixLen: number } {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  parseIPv4(addr);
  if (slash < 0) return { addr, prefixLen: defaultLen };
  const lenText = text.slice(slash + 1);
  const prefixLen = Number(lenText);
  if (!/^\d{1,2}$/.test(lenText) || prefixLen < 1 || prefixLen > 32) {
    throw new Error(`bad prefix length in ${JSON.stringify(text)}`);
  }
  return { addr, prefixLen };
}
