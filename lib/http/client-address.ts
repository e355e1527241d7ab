// Who a request comes from, for the per-address limits: the peer's address, or behind a proxy
// listed in server.trusted_proxies the address that proxy saw (X-Forwarded-For); and the prefix
// (/24 IPv4, /64 IPv6) that one person or one host usually holds. Pure.
import { BlockList, isIPv4, isIPv6 } from "node:net";
import { ConfigError } from "../config.ts";

/** An IPv4 address as Node reports it on a dual-stack socket (`::ffff:1.2.3.4`) → `1.2.3.4`. */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(trimmed);
  return mapped?.[1] ?? trimmed.toLowerCase();
}

/**
 * server.trusted_proxies as a matcher: each entry an address ("10.0.0.5", "::1") or a CIDR range
 * ("10.0.0.0/8", "fd00::/8"). Throws on an entry that is neither, naming it (checked at start).
 */
export function trustedProxies(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = "", bits, extra] = entry.trim().split("/");
    const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
    const prefix = bits === undefined ? undefined : Number(bits);
    const maxBits = family === "ipv4" ? 32 : 128;
    if (!family || extra !== undefined || (prefix !== undefined && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= maxBits))) {
      throw new ConfigError(`server.trusted_proxies: "${entry}" is not an IP address or a CIDR range (like 10.0.0.0/8)`);
    }
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, prefix, family);
  }
  return (address) => {
    const normal = normalizeAddress(address);
    if (isIPv4(normal)) return list.check(normal, "ipv4");
    if (isIPv6(normal)) return list.check(normal, "ipv6");
    return false;
  };
}

/**
 * The client's address: the peer's, unless the peer is a trusted proxy; then the last address in
 * X-Forwarded-For that is not itself a trusted proxy (each proxy appends the address it saw, so
 * what comes before an untrusted hop may be made up by the client).
 */
export function clientAddress(
  peerAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  isTrusted: (address: string) => boolean,
): string {
  const peer = normalizeAddress(peerAddress ?? "unknown");
  if (!isTrusted(peer) || forwardedFor === undefined) return peer;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
    .split(",")
    .map((hop) => normalizeAddress(hop))
    .filter((hop) => hop !== "");
  for (let index = hops.length - 1; index >= 0; index--) {
    const hop = hops[index] ?? "";
    if (!isIPv4(hop) && !isIPv6(hop)) return peer;
    if (!isTrusted(hop)) return hop;
  }
  return hops[0] ?? peer;
}

/** The /24 of an IPv4 address or the /64 of an IPv6 one ("192.0.2.0/24", "2001:db8:1:2::/64"). */
export function addressPrefix(address: string): string {
  const normal = normalizeAddress(address);
  if (isIPv4(normal)) return `${normal.split(".").slice(0, 3).join(".")}.0/24`;
  if (!isIPv6(normal)) return normal;
  const [head = "", tail = ""] = normal.split("::");
  const headParts = head === "" ? [] : head.split(":");
  const tailParts = tail === "" ? [] : tail.split(":");
  // An embedded IPv4 tail (::1.2.3.4) is two groups; only the first four groups matter here.
  const missing = 8 - headParts.length - tailParts.length;
  const groups = normal.includes("::") ? [...headParts, ...Array<string>(Math.max(0, missing)).fill("0"), ...tailParts] : headParts;
  const first = groups.slice(0, 4).map((group) => (Number.parseInt(group, 16) || 0).toString(16));
  return `${first.join(":")}::/64`;
}
