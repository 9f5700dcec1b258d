// IP and CIDR arithmetic (ipaddr.js), tolerant of bad input: an unparsable address or prefix matches
// nothing (the Cilium agent / apiserver reject such policies anyway).

import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

function parseIpUncached(ip: string): Addr | undefined {
  if (typeof ip !== 'string' || !ipaddr.isValid(ip)) return undefined;
  try {
    return ipaddr.process(ip);
  } catch {
    return undefined;
  }
}

interface ParsedIp {
  readonly addr: Addr | undefined;
  readonly canonical: string | undefined;
  readonly family: 'ipv4' | 'ipv6' | undefined;
}
// The same few thousand addresses (pod, node, apiserver, Service IPs) are parsed on every request:
// parse each once. Parsed addresses are only read (kind, match, toString), never modified.
const ipCache = new Map<string, ParsedIp>();
function parsedIp(ip: string): ParsedIp {
  let hit = ipCache.get(ip);
  if (hit === undefined) {
    const addr = parseIpUncached(ip);
    hit = { addr, canonical: addr?.toString(), family: addr ? (addr.kind() === 'ipv4' ? 'ipv4' : 'ipv6') : undefined };
    if (typeof ip === 'string') {
      if (ipCache.size > 100_000) ipCache.clear();
      ipCache.set(ip, hit);
    }
  }
  return hit;
}

/** A parsed address, IPv4-mapped IPv6 folded to IPv4; undefined when not an IP. */
export function parseIp(ip: string): Addr | undefined {
  return parsedIp(ip).addr;
}

/** Canonical text of an IP (for lookups), or undefined when not an IP. */
export function canonicalIp(ip: string): string | undefined {
  return parsedIp(ip).canonical;
}

export function ipFamily(ip: string): 'ipv4' | 'ipv6' | undefined {
  return parsedIp(ip).family;
}

const cidrCache = new Map<string, [Addr, number] | null>();

/** A parsed CIDR (a bare IP is a host prefix); undefined when invalid. */
export function parseCidr(cidr: string): [Addr, number] | undefined {
  const hit = cidrCache.get(cidr);
  if (hit !== undefined) return hit ?? undefined;
  let out: [Addr, number] | null = null;
  try {
    if (typeof cidr === 'string') {
      if (cidr.includes('/')) {
        const [a, bits] = ipaddr.parseCIDR(cidr);
        // Fold IPv4-mapped IPv6 prefixes only when they are IPv4 prefixes in disguise.
        if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
          out = [(a as ipaddr.IPv6).toIPv4Address(), bits - 96];
        } else out = [a, bits];
      } else {
        const a = parseIp(cidr);
        if (a) out = [a, a.kind() === 'ipv4' ? 32 : 128];
      }
    }
  } catch {
    out = null;
  }
  if (cidrCache.size > 10_000) cidrCache.clear();
  cidrCache.set(cidr, out);
  return out ?? undefined;
}

/** Is `ip` inside `cidr`? False for invalid input or mixed families. */
export function cidrContains(cidr: string, ip: string): boolean {
  const range = parseCidr(cidr);
  const a = parseIp(ip);
  if (!range || !a || range[0].kind() !== a.kind()) return false;
  return a.match(range as [never, number]);
}

/** `cidr` minus `except`: contains the IP and no except prefix does. */
export function cidrSetContains(cidr: string, except: readonly string[], ip: string): boolean {
  return cidrContains(cidr, ip) && !except.some((e) => cidrContains(e, ip));
}

/** The prefix length of a valid CIDR, and its family. */
export function cidrInfo(cidr: string): { family: 'ipv4' | 'ipv6'; bits: number } | undefined {
  const r = parseCidr(cidr);
  return r ? { family: r[0].kind() === 'ipv4' ? 'ipv4' : 'ipv6', bits: r[1] } : undefined;
}
