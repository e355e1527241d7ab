// SSRF guard for the built-in fetch tool: which addresses the tool may connect to.
//
// The model chooses the URLs, and a page it reads may tell it to fetch something else, so a
// fetch must never reach the machine itself, the internal network or a cloud metadata service
// unless the operator allowed that host explicitly (allow_hosts).
//
// Two checks, both before any byte is sent:
//  - checkUrlTarget(): scheme, and the host when it is an IP literal. Node connects to IP
//    literals without calling `lookup`, so these must be checked up front. WHATWG URL parsing
//    has already turned odd IPv4 spellings (2130706433, 0x7f.1, 0177.0.0.1) into dotted form and
//    IPv6 into its compressed hex form (::ffff:127.0.0.1 -> ::ffff:7f00:1), so what we check is
//    exactly what Node will connect to.
//  - createGuardedLookup(): a `lookup` for http(s).request that resolves the name and rejects it
//    if ANY resolved address is disallowed. The socket then connects to the addresses returned
//    here, so a DNS answer that changes between a check and the connect (rebinding) cannot slip
//    through.
//
// Everything except createGuardedLookup is a pure function.

import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { isIP, type LookupFunction } from "node:net";

/** Where an operator can allow a host; named in every refusal so the fix is one step away. */
export const ALLOW_HOSTS_HINT = "allow_hosts of the fetch server in mcp_agent.config.yaml";

/** A failure that must be reported to the model as is (not wrapped in "Failed to fetch ..."). */
export class FetchRefusedError extends Error {
  override name = "FetchRefusedError";
}

// ---------------------------------------------------------------------------------------------
// Address parsing

/** Parses strict dotted-quad IPv4 ("10.0.0.1") into a 32-bit unsigned number, else null. */
export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    // Only plain decimal here: URL parsing already normalised other spellings, and resolvers
    // return dotted decimal. Leading zeros are rejected rather than guessed at (octal or not).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

/** Parses an IPv6 address (with optional dotted IPv4 tail, optional %zone) into a 128-bit bigint. */
export function parseIPv6(text: string): bigint | null {
  const address = text.replace(/%.*$/, ""); // the zone id does not change which host it is
  if (isIP(address) !== 6) return null; // let Node reject malformed input, then parse knowing it is valid
  let head = address;
  let tail: number[] = [];
  const lastColon = address.lastIndexOf(":");
  const v4 = parseIPv4(address.slice(lastColon + 1));
  if (v4 !== null) {
    tail = [Math.floor(v4 / 0x10000), v4 % 0x10000];
    head = address.slice(0, lastColon + 1);
    // Drop the ":" before the IPv4 tail ("1:2:3:4:5:6:" -> "1:2:3:4:5:6"), unless it is half of "::".
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const toGroups = (s: string): number[] => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  let groups: number[];
  const gap = head.indexOf("::");
  if (gap >= 0) {
    const left = toGroups(head.slice(0, gap));
    const right = [...toGroups(head.slice(gap + 2)), ...tail];
    const missing = 8 - left.length - right.length;
    if (missing < 0) return null;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    groups = [...toGroups(head), ...tail];
  }
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return null;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function formatIPv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

// ---------------------------------------------------------------------------------------------
// Special-purpose ranges (IANA IPv4/IPv6 Special-Purpose Address Registries and friends).
// First match wins, so more specific entries come before the ranges that contain them.

interface Range4 {
  base: number;
  prefix: number;
  reason: string;
}
interface Range6 {
  base: bigint;
  prefix: number;
  reason: string;
}

function range4(cidr: string, reason: string): Range4 {
  const parsed = parseCidr(cidr);
  if (parsed?.family !== 4) throw new Error(`bad built-in IPv4 range ${cidr}`);
  return { base: parsed.base, prefix: parsed.prefix, reason };
}
function range6(cidr: string, reason: string): Range6 {
  const parsed = parseCidr(cidr);
  if (parsed?.family !== 6) throw new Error(`bad built-in IPv6 range ${cidr}`);
  return { base: parsed.base, prefix: parsed.prefix, reason };
}

const IPV4_SPECIAL: Range4[] = [
  range4("0.0.0.0/8", 'an unspecified ("this network") address'),
  range4("10.0.0.0/8", "a private address (10.0.0.0/8)"),
  range4("100.64.0.0/10", "a shared carrier-grade NAT address (100.64.0.0/10)"),
  range4("127.0.0.0/8", "a loopback address"),
  range4("169.254.169.254/32", "the cloud metadata address (link-local)"),
  range4("169.254.0.0/16", "a link-local address"),
  range4("172.16.0.0/12", "a private address (172.16.0.0/12)"),
  range4("192.0.0.0/24", "an IETF protocol assignment address (192.0.0.0/24)"),
  range4("192.0.2.0/24", "a documentation address (192.0.2.0/24)"),
  range4("192.88.99.0/24", "a deprecated 6to4 relay anycast address"),
  range4("192.168.0.0/16", "a private address (192.168.0.0/16)"),
  range4("198.18.0.0/15", "a benchmarking address (198.18.0.0/15)"),
  range4("198.51.100.0/24", "a documentation address (198.51.100.0/24)"),
  range4("203.0.113.0/24", "a documentation address (203.0.113.0/24)"),
  range4("224.0.0.0/4", "a multicast address"),
  range4("255.255.255.255/32", "the broadcast address"),
  range4("240.0.0.0/4", "a reserved address (240.0.0.0/4)"),
];

// IPv6 ranges that carry an IPv4 address in their low 32 bits (or, for 6to4, bits 80..111):
// they are judged by that IPv4 address, because that is where the packets end up.
const IPV6_EMBEDDING_V4: { range: Range6; extract: (value: bigint) => number }[] = [
  { range: range6("::ffff:0:0/96", "an IPv4-mapped address"), extract: (v) => Number(v & 0xffffffffn) },
  { range: range6("::ffff:0:0:0/96", "an IPv4-translated address"), extract: (v) => Number(v & 0xffffffffn) },
  { range: range6("64:ff9b::/96", "a NAT64 address"), extract: (v) => Number(v & 0xffffffffn) },
  { range: range6("2002::/16", "a 6to4 address"), extract: (v) => Number((v >> 80n) & 0xffffffffn) },
];

const IPV6_SPECIAL: Range6[] = [
  range6("::/128", "the unspecified address"),
  range6("::1/128", "a loopback address"),
  range6("::/96", "a deprecated IPv4-compatible address"),
  range6("64:ff9b:1::/48", "a local-use NAT64 address"),
  range6("100::/64", "a discard-only address"),
  range6("2001:db8::/32", "a documentation address (2001:db8::/32)"),
  range6("2001::/23", "an IETF protocol assignment address (2001::/23, e.g. Teredo)"),
  range6("3fff::/20", "a documentation address (3fff::/20)"),
  range6("5f00::/16", "a segment routing (SRv6) address"),
  range6("fc00::/7", "a unique local (private) address"),
  range6("fe80::/10", "a link-local address"),
  range6("fec0::/10", "a deprecated site-local address"),
  range6("ff00::/8", "a multicast address"),
];
const IPV6_GLOBAL_UNICAST = range6("2000::/3", "");

function inRange4(value: number, range: { base: number; prefix: number }): boolean {
  if (range.prefix === 0) return true;
  const size = 2 ** (32 - range.prefix);
  return Math.floor(value / size) === Math.floor(range.base / size);
}
function inRange6(value: bigint, range: { base: bigint; prefix: number }): boolean {
  const shift = BigInt(128 - range.prefix);
  return value >> shift === range.base >> shift;
}

function classifyIPv4(value: number): string | null {
  return IPV4_SPECIAL.find((r) => inRange4(value, r))?.reason ?? null;
}

function classifyIPv6(value: bigint): string | null {
  for (const { range, extract } of IPV6_EMBEDDING_V4) {
    if (!inRange6(value, range)) continue;
    const v4 = extract(value);
    const reason = classifyIPv4(v4);
    return reason === null ? null : `${range.reason} of ${formatIPv4(v4)}, ${reason}`;
  }
  const special = IPV6_SPECIAL.find((r) => inRange6(value, r));
  if (special) return special.reason;
  // Only 2000::/3 is allocated for global unicast; anything else is not a public web server.
  return inRange6(value, IPV6_GLOBAL_UNICAST) ? null : "not a global unicast address";
}

/**
 * Why the fetch tool must not connect to this IP address ("a loopback address", ...), or null
 * if it is an ordinary public address. Input is an IPv4 or IPv6 address as text.
 */
export function classifyAddress(ip: string): string | null {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return classifyIPv4(v4);
  const v6 = parseIPv6(ip);
  if (v6 !== null) return classifyIPv6(v6);
  return "not a valid IP address";
}

// ---------------------------------------------------------------------------------------------
// CIDRs and the allow list

export type Cidr = { family: 4; base: number; prefix: number } | { family: 6; base: bigint; prefix: number };

/** Parses "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or /128); null if invalid. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? null : text.slice(slash + 1);
  if (prefixText !== null && !/^[0-9]{1,3}$/.test(prefixText)) return null;
  const v4 = parseIPv4(address);
  if (v4 !== null) {
    const prefix = prefixText === null ? 32 : Number(prefixText);
    return prefix <= 32 ? { family: 4, base: v4, prefix } : null;
  }
  const v6 = address.includes("%") ? null : parseIPv6(address);
  if (v6 !== null) {
    const prefix = prefixText === null ? 128 : Number(prefixText);
    return prefix <= 128 ? { family: 6, base: v6, prefix } : null;
  }
  return null;
}

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) is the same host as a.b.c.d, so IPv4 CIDRs match it too. */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const v4 = parseIPv4(ip);
  const v6 = v4 === null ? parseIPv6(ip) : null;
  if (cidr.family === 4) {
    const asV4 = v4 ?? (v6 !== null && v6 >> 32n === 0xffffn ? Number(v6 & 0xffffffffn) : null);
    return asV4 !== null && inRange4(asV4, cidr);
  }
  const asV6 = v6 ?? (v4 !== null ? (0xffffn << 32n) | BigInt(v4) : null);
  return asV6 !== null && inRange6(asV6, cidr);
}

export interface AllowList {
  /** Host names in URL form (lower case, punycode, no trailing dot), matched on the URL's host. */
  hosts: ReadonlySet<string>;
  /** IPs and CIDRs, matched on the address actually connected to. */
  cidrs: readonly Cidr[];
}

/** Strips IPv6 brackets and a trailing root dot, so "[::1]" and "Example.com." compare as they resolve. */
export function normaliseHost(host: string): string {
  const unbracketed = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return unbracketed.toLowerCase().replace(/\.$/, "");
}

/**
 * Builds the allow list from config entries: IPs and CIDRs ("127.0.0.1", "10.0.0.0/8",
 * "fd00::/8", "[::1]") or host names ("intranet.example"). Throws on an entry that is neither,
 * so a typo in the config is reported at start-up instead of silently allowing nothing.
 */
export function parseAllowList(entries: readonly string[]): AllowList {
  const hosts = new Set<string>();
  const cidrs: Cidr[] = [];
  for (const raw of entries) {
    const entry = normaliseHost(raw.trim());
    const cidr = parseCidr(entry);
    if (cidr) {
      cidrs.push(cidr);
      continue;
    }
    if (entry === "" || entry.includes("/")) throw new Error(`allow_hosts: "${raw}" is not a host name, IP address or CIDR`);
    // Normalise the name the way URLs are (IDN -> punycode, and 0x7f.1 -> 127.0.0.1).
    let hostname: string;
    try {
      hostname = normaliseHost(new URL(`http://${entry}/`).hostname);
    } catch {
      throw new Error(`allow_hosts: "${raw}" is not a host name, IP address or CIDR`);
    }
    const asIp = parseCidr(hostname);
    if (asIp) cidrs.push(asIp);
    else hosts.add(hostname);
  }
  return { hosts, cidrs };
}

function addressAllowed(allow: AllowList, ip: string): boolean {
  return allow.cidrs.some((cidr) => cidrContains(cidr, ip));
}

function refusal(url: string, subject: string, reason: string): string {
  return `Refused to fetch ${url}: ${subject} ${reason}. To allow it, add it to ${ALLOW_HOSTS_HINT}`;
}

/**
 * The pre-connection check of one URL (each redirect hop too): the refusal message, or null if
 * the request may go ahead (host names are checked again, on their addresses, by the lookup).
 */
export function checkUrlTarget(url: URL, allow: AllowList): string | null {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `Refused to fetch ${url.href}: only http and https URLs can be fetched, not ${url.protocol.replace(/:$/, "")}`;
  }
  const host = normaliseHost(url.hostname);
  if (host === "") return `Refused to fetch ${url.href}: the URL has no host`;
  if (allow.hosts.has(host) || isIP(host) === 0) return null;
  if (addressAllowed(allow, host)) return null;
  const reason = classifyAddress(host);
  return reason === null ? null : refusal(url.href, `${host} is`, reason);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http(s).request that resolves like Node's default (dns.lookup) but fails the
 * connection if any address is disallowed. Checking every address, not only the first, matters
 * because Node may try them all (autoSelectFamily / happy eyeballs).
 */
export function createGuardedLookup(url: string, allow: AllowList): LookupFunction {
  return (hostname: string, options, callback: LookupCallback) => {
    const host = normaliseHost(hostname);
    dnsLookup(host, { family: options.family ?? 0, hints: options.hints, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      if (!allow.hosts.has(host)) {
        for (const { address } of addresses) {
          if (addressAllowed(allow, address)) continue;
          const reason = classifyAddress(address);
          if (reason !== null) {
            return callback(new FetchRefusedError(refusal(url, `${host} resolves to ${address}, which is`, reason)), []);
          }
        }
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" }), []);
      callback(null, first.address, first.family);
    });
  };
}
