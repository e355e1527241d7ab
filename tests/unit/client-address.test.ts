// Who a request comes from: the peer, or behind a trusted proxy the last untrusted X-Forwarded-For
// hop; and the /24 or /64 it belongs to. Pure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { addressPrefix, clientAddress, normalizeAddress, trustedProxies } from "../../lib/http/client-address.ts";
import { ConfigError } from "../../lib/config.ts";

test("prefixes: /24 for IPv4 (mapped ones too), /64 for IPv6 however it is written", () => {
  assert.equal(addressPrefix("192.0.2.77"), "192.0.2.0/24");
  assert.equal(addressPrefix("::ffff:192.0.2.77"), "192.0.2.0/24");
  assert.equal(normalizeAddress("::FFFF:10.1.2.3"), "10.1.2.3");
  assert.equal(addressPrefix("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressPrefix("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressPrefix("::1"), "0:0:0:0::/64");
});

test("X-Forwarded-For counts only from a trusted proxy, and only its last untrusted hop", () => {
  const trusted = trustedProxies(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
  assert.equal(clientAddress("203.0.113.1", "198.51.100.1", trusted), "203.0.113.1", "an untrusted peer's header is ignored");
  assert.equal(clientAddress("127.0.0.1", "198.51.100.1", trusted), "198.51.100.1");
  assert.equal(clientAddress("::ffff:127.0.0.1", "1.1.1.1, 198.51.100.1, 10.2.3.4", trusted), "198.51.100.1");
  assert.equal(clientAddress("fd00::5", ["1.1.1.1", "198.51.100.9"], trusted), "198.51.100.9");
  assert.equal(clientAddress("127.0.0.1", "not-an-ip", trusted), "127.0.0.1", "garbage is not an address");
  assert.equal(clientAddress("127.0.0.1", undefined, trusted), "127.0.0.1");
});

test("a trusted_proxies entry that is not an address or range stops the start, naming the key", () => {
  for (const entry of ["example.com", "10.0.0.0/33", "10.0.0.0/8/1", "fd00::/129"]) {
    assert.throws(
      () => trustedProxies([entry]),
      (error: unknown) => error instanceof ConfigError && /server\.trusted_proxies/.test(error.message),
    );
  }
});
