// lib/http/access.ts without a server: Host, Origin, the token and well-formed upgrade requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkHost,
  checkOrigin,
  checkToken,
  checkUpgradeRequest,
  hostWithoutPort,
  isLoopbackBind,
  requestToken,
  tokenMatches,
} from "../../lib/http/access.ts";

test("access.ts: tokenMatches, checkOrigin, checkHost, hostWithoutPort and friends", () => {
  assert.equal(tokenMatches("abc", "abc"), true);
  assert.equal(tokenMatches("abd", "abc"), false);
  assert.equal(tokenMatches("abcd", "abc"), false, "a longer token");
  assert.equal(tokenMatches("", "abc"), false);
  assert.equal(tokenMatches(undefined, "abc"), false);

  assert.equal(hostWithoutPort("example.com:8000"), "example.com");
  assert.equal(hostWithoutPort("example.com"), "example.com");
  assert.equal(hostWithoutPort("[::1]:8000"), "[::1]");
  assert.equal(hostWithoutPort("[::1]"), "[::1]");
  assert.equal(hostWithoutPort("127.0.0.1:1"), "127.0.0.1");

  assert.equal(checkOrigin(undefined, "127.0.0.1:8000", []), undefined, "no Origin: a script");
  assert.equal(checkOrigin("http://127.0.0.1:8000", "127.0.0.1:8000", []), undefined);
  assert.equal(checkOrigin("https://127.0.0.1:8000", "127.0.0.1:8000", []), undefined);
  assert.equal(checkOrigin("HTTP://LOCALHOST:8000", "localhost:8000", []), undefined);
  assert.equal(checkOrigin("http://evil.example", "127.0.0.1:8000", [])?.status, 403);
  assert.equal(checkOrigin("http://127.0.0.1:9999", "127.0.0.1:8000", [])?.status, 403, "another port is another origin");
  assert.equal(checkOrigin("http://localhost:8000", "127.0.0.1:8000", [])?.status, 403);
  assert.equal(checkOrigin("null", "127.0.0.1:8000", [])?.status, 403);
  assert.equal(checkOrigin("file://127.0.0.1:8000", "127.0.0.1:8000", [])?.status, 403);
  assert.equal(checkOrigin("http://127.0.0.1:8000", undefined, [])?.status, 403);
  assert.equal(checkOrigin("http://app.example", "127.0.0.1:8000", ["http://app.example"]), undefined);
  assert.equal(checkOrigin("http://app.example:1", "127.0.0.1:8000", ["http://app.example"])?.status, 403);
  assert.equal(checkOrigin("http://anything.example", "127.0.0.1:8000", ["*"]), undefined);

  assert.equal(checkHost("localhost:8000", "127.0.0.1", []), undefined);
  assert.equal(checkHost("127.0.0.1", "127.0.0.1", []), undefined);
  assert.equal(checkHost("[::1]:8000", "::1", []), undefined);
  assert.equal(checkHost("Localhost", "localhost", []), undefined);
  assert.equal(checkHost("evil.example", "127.0.0.1", [])?.status, 403);
  assert.equal(checkHost("evil.example:8000", "127.0.0.5", [])?.status, 403, "all of 127/8 is loopback");
  assert.equal(checkHost(undefined, "127.0.0.1", [])?.status, 403);
  assert.equal(checkHost("", "127.0.0.1", [])?.status, 403);
  assert.equal(checkHost("localhost.evil.example", "127.0.0.1", [])?.status, 403);
  assert.equal(checkHost("box.lan:8000", "127.0.0.1", ["box.lan"]), undefined);
  assert.equal(checkHost("box.lan:8000", "127.0.0.1", ["box.lan:8000"]), undefined);
  assert.equal(checkHost("box.lan:9000", "127.0.0.1", ["box.lan:8000"])?.status, 403);
  assert.equal(checkHost("evil.example", "0.0.0.0", []), undefined, "not loopback: Host is not checked");

  assert.equal(isLoopbackBind("127.0.0.1"), true);
  assert.equal(isLoopbackBind("::1"), true);
  assert.equal(isLoopbackBind("localhost"), true);
  assert.equal(isLoopbackBind("0.0.0.0"), false);
  assert.equal(isLoopbackBind("::"), false);
  assert.equal(isLoopbackBind("192.168.1.5"), false);

  assert.equal(requestToken({ authorization: "Bearer abc " }, "/ws/x"), "abc");
  assert.equal(requestToken({}, "/ws/x?token=q"), "q");
  assert.equal(requestToken({}, "/ws/x"), undefined);
  assert.equal(checkToken({}, "/ws/x", undefined), undefined, "no token configured");
  assert.equal(checkToken({}, "/ws/x", "t")?.status, 401);
  assert.equal(checkToken({ authorization: "Bearer t" }, "/ws/x", "t"), undefined);

  const good = { upgrade: "websocket", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" };
  assert.equal(checkUpgradeRequest("GET", good), undefined);
  assert.equal(checkUpgradeRequest("POST", good)?.status, 400);
  assert.equal(checkUpgradeRequest("GET", { ...good, "sec-websocket-key": undefined })?.status, 400);
  assert.equal(checkUpgradeRequest("GET", { ...good, "sec-websocket-key": "short" })?.status, 400);
  assert.equal(checkUpgradeRequest("GET", { ...good, "sec-websocket-version": "8" })?.status, 400);
  assert.equal(checkUpgradeRequest("GET", { ...good, upgrade: "h2c" })?.status, 400);
});
