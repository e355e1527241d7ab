// lib/filesystem/containment.ts, the one path check (the built-in filesystem
// uses it on every call; a files API can reuse it): resolution, and the check between check and use.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { constants, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { openInWorkspace, resolveInWorkspace } from "../../lib/filesystem/containment.ts";

let base: string;
let root: string;
before(() => {
  base = realpathSync(mkdtempSync(path.join(tmpdir(), "containment-")));
  root = path.join(base, "alice");
  mkdirSync(path.join(root, "dir"), { recursive: true });
  mkdirSync(path.join(base, "alice2"));
  mkdirSync(path.join(base, "outside"));
  writeFileSync(path.join(root, "dir", "f.txt"), "inside");
  writeFileSync(path.join(base, "outside", "f.txt"), "OUTSIDE");
  symlinkSync(path.join(base, "outside"), path.join(root, "out"));
  symlinkSync("dir", path.join(root, "in"));
  symlinkSync(path.join(base, "outside", "new.txt"), path.join(root, "dangling"));
});
after(() => rmSync(base, { recursive: true, force: true }));

test("inside paths resolve to their real path; new files through their nearest existing parent", async () => {
  assert.deepEqual(await resolveInWorkspace(root, "dir/f.txt"), { ok: true, path: path.join(root, "dir", "f.txt"), root, exists: true });
  assert.deepEqual(await resolveInWorkspace(root, path.join(root, "in", "f.txt")), {
    ok: true,
    path: path.join(root, "dir", "f.txt"),
    root,
    exists: true,
  });
  assert.deepEqual(await resolveInWorkspace(root, "in/new/deeper.txt", { allowMissing: true }), {
    ok: true,
    path: path.join(root, "dir", "new", "deeper.txt"),
    root,
    exists: false,
  });
  assert.deepEqual(await resolveInWorkspace(root, "nope.txt"), {
    ok: false,
    error: `ENOENT: no such file or directory, '${path.join(root, "nope.txt")}'`,
    because: "missing",
  });
});

test("../, absolute paths out, a same-prefix sibling, symlinks out (existing or dangling), the home folder: refused with the npm server's words", async () => {
  const refusals: [string, RegExp][] = [
    ["../alice2/x", /^Access denied - path outside allowed directories: .*alice2\/x not in .*alice$/],
    [path.join(base, "alice2"), /^Access denied - path outside allowed directories/],
    ["/etc/passwd", /^Access denied - path outside allowed directories: \/etc\/passwd not in /],
    ["~/x", /^Access denied - path outside allowed directories/],
    ["C:\\Windows", /^Access denied - Windows-style path received on a POSIX host/],
    ["out/f.txt", /^Access denied - symlink target outside allowed directories: .*outside\/f.txt not in /],
    ["out/new.txt", /^Access denied - symlink target outside allowed directories: .*outside not in /],
    ["dangling", /^Parent directory does not exist: /],
    ["a\0b", /^Access denied - path outside allowed directories/],
  ];
  for (const [requested, expected] of refusals) {
    const result = await resolveInWorkspace(root, requested, { allowMissing: true });
    assert.equal(result.ok, false, requested);
    if (!result.ok) assert.match(result.error, expected, requested);
  }
});

test("denied paths (the server's own files) are refused inside the root too", async () => {
  const result = await resolveInWorkspace(root, "dir/f.txt", { deny: [path.join(root, "dir")] });
  assert.deepEqual(result, {
    ok: false,
    error: `Access denied - ${path.join(root, "dir", "f.txt")} is one of the server's own files`,
    because: "server_file",
  });
});

test("a root that does not exist yet: everything below it resolves as missing, nothing is created", async () => {
  const later = path.join(base, "later", "bob");
  assert.deepEqual(await resolveInWorkspace(later, "a/b.txt", { allowMissing: true }), {
    ok: true,
    path: path.join(later, "a", "b.txt"),
    root: later,
    exists: false,
  });
  assert.equal((await resolveInWorkspace(later, "../../outside/f.txt", { allowMissing: true })).ok, false);
});

test("between check and use: a file swapped for a symlink out (O_NOFOLLOW) and a folder swapped for one (the opened fd's real path) are refused", async () => {
  const file = await resolveInWorkspace(root, "dir/f.txt");
  assert.ok(file.ok);
  // The file itself becomes a symlink out.
  renameSync(path.join(root, "dir", "f.txt"), path.join(root, "dir", "f.orig"));
  symlinkSync(path.join(base, "outside", "f.txt"), path.join(root, "dir", "f.txt"));
  await assert.rejects(openInWorkspace(root, file.path, constants.O_RDONLY), /ELOOP/);
  rmSync(path.join(root, "dir", "f.txt"));
  renameSync(path.join(root, "dir", "f.orig"), path.join(root, "dir", "f.txt"));
  // Its folder becomes a symlink out.
  renameSync(path.join(root, "dir"), path.join(root, "dir.orig"));
  symlinkSync(path.join(base, "outside"), path.join(root, "dir"));
  await assert.rejects(openInWorkspace(root, file.path, constants.O_RDONLY), /Access denied - .* changed while it was being opened/);
  rmSync(path.join(root, "dir"));
  renameSync(path.join(root, "dir.orig"), path.join(root, "dir"));
  const handle = await openInWorkspace(root, file.path, constants.O_RDONLY);
  assert.equal((await handle.readFile()).toString(), "inside");
  await handle.close();
});
