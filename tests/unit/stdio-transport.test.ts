// lib/mcp/stdio-transport.ts: `npx -y <pkg>` of a locally installed package runs as `node <bin>`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { resolveLocalNpx } from "../../lib/mcp/stdio-transport.ts";

test("`npx -y pkg@spec` runs the local copy only when its version satisfies the spec", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "npx-pin-"));
  try {
    const pkgDir = path.join(dir, "node_modules", "pinned-server");
    mkdirSync(pkgDir, { recursive: true });
    writeFileSync(path.join(pkgDir, "package.json"), JSON.stringify({ name: "pinned-server", version: "1.2.3", bin: "cli.js" }));
    writeFileSync(path.join(pkgDir, "cli.js"), "");
    const local = (spec: string) => resolveLocalNpx("npx", ["-y", spec, "--flag"], [dir]);
    assert.equal(local("pinned-server").command, process.execPath);
    assert.equal(local("pinned-server@1.2.3").command, process.execPath);
    assert.equal(local("pinned-server@^1.0.0").command, process.execPath);
    assert.deepEqual(local("pinned-server@2.0.0"), { command: "npx", args: ["-y", "pinned-server@2.0.0", "--flag"] });
    assert.deepEqual(local("pinned-server@latest"), { command: "npx", args: ["-y", "pinned-server@latest", "--flag"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("`npx -y <pkg>` of a locally installed package runs as `node <bin>`; anything else is unchanged", () => {
  const resolved = resolveLocalNpx("npx", ["-y", "@modelcontextprotocol/server-filesystem", "/tmp/x"], [process.cwd()]);
  assert.equal(resolved.command, process.execPath);
  assert.match(resolved.args[0] ?? "", /server-filesystem\/dist\/index\.js$/);
  assert.deepEqual(resolved.args.slice(1), ["/tmp/x"]);
  assert.deepEqual(resolveLocalNpx("npx", ["-y", "not-installed-package-xyz"], [process.cwd()]), {
    command: "npx",
    args: ["-y", "not-installed-package-xyz"],
  });
  assert.deepEqual(resolveLocalNpx("uvx", ["mcp-server-fetch"], [process.cwd()]), { command: "uvx", args: ["mcp-server-fetch"] });
});
