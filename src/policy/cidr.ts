// IP and CIDR arithmetic (ipaddr.js), tolerant of bad input: an unparsable address or prefix matches
// nothing (the Cilium agent / apiserver reject such policies anyway).

import ipaddr from 'ipaddr.js';
import { addrCache, cidrCache, ipCache } from './memo.ts';

export type Addr = ipaddr.IPv4 | ipaddr.IPv6;

function parseIpUncached(ip: string): Addr | undefined {
  if (typeof ip !== 'string' || !ipaddr.isValid(ip)) return undefined;
  try {
    return ipaddr.process(ip);
  } catch {
    return undefined;
  }
}

export interface ParsedIp {
  readonly canonical: string | undefined;
  readonly family: 'ipv4' | 'ipv6' | undefined;
}

// Every pod IP is asked for its canonical text and family: keep only those (the input string itself
// when it is already canonical), not the parsed address, which costs ~200 bytes per pod at 50k pods.
function parsedIp(ip: string): ParsedIp {
  let hit = ipCache.get(ip);
  if (hit === undefined) {
    const addr = parseIpUncached(ip);
    const text = addr?.toString();
    hit = { canonical: text === ip ? ip : text, family: addr ? (addr.kind() === 'ipv4' ? 'ipv4' : 'ipv6') : undefined };
    if (typeof ip === 'string') {
      if (ipCache.size > 100_000) ipCache.clear();
      ipCache.set(ip, hit);
    }
  }
  return hit;
}

// Parsed addresses are needed for CIDR matching only (node, host and world addresses): a small cache.
/** A parsed address, IPv4-mapped IPv6 folded to IPv4; undefined when not an IP. */
export function parseIp(ip: string): Addr | undefined {
  let hit = addrCache.get(ip);
  if (hit === undefined) {
    hit = parseIpUncached(ip) ?? null;
    if (addrCache.size > 4_096) addrCache.clear();
    addrCache.set(ip, hit);
  }
  return hit ?? undefined;
}

/** Whether an IP is link-local (169.254.0.0/16, fe80::/10), which no pod is given. */
export function isLinkLocal(ip: string): boolean {
  return parseIp(ip)?.range() === 'linkLocal';
}

/**
 * Whether `ip` is an IPv4 address in its canonical text already: four decimal octets 0-255 without
 * leading zeros, what a pod's IPv4 address always is. Told by a scan of the characters (no parse, no
 * allocation), so those addresses, 55k at 50k pods, are not kept in ipCache (issue 21: 3.9 MB of heap).
 */
export function isCanonicalIpv4(ip: string): boolean {
  if (typeof ip !== 'string') return false;
  const n = ip.length;
  if (n < 7 || n > 15) return false;
  let octets = 0;
  let i = 0;
  while (i < n) {
    const start = i;
    let v = 0;
    while (i < n) {
      const c = ip.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && ip.charCodeAt(start) === 48)) return false;
    octets++;
    if (i === n) break;
    if (ip.charCodeAt(i) !== 46 || octets === 4) return false;
    i++;
    if (i === n) return false;
  }
  return octets === 4;
}

/** Canonical text of an IP (for lookups), or undefined when not an IP. */
export function canonicalIp(ip: string): string | undefined {
  return isCanonicalIpv4(ip) ? ip : parsedIp(ip).canonical;
}

export function ipFamily(ip: string): 'ipv4' | 'ipv6' | undefined {
  return isCanonicalIpv4(ip) ? 'ipv4' : parsedIp(ip).family;
}


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
