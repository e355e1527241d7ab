// The Files panel's rules without the DOM (page/file-refs.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { filesUrl, insertReference, previewKind, readListing, tooBigText, uploadRefusal } from "../../page/file-refs.js";

test("files URLs encode the user id and each path segment", () => {
  assert.equal(filesUrl("alice", ""), "/files/alice");
  assert.equal(filesUrl("alice", "notes/a b#1.md"), "/files/alice/notes/a%20b%231.md");
});

test("a reference goes in at the cursor, spaced from the words around it", () => {
  assert.deepEqual(insertReference("", 0, 0, "a.txt"), { value: "`a.txt` ", caret: 8 });
  assert.deepEqual(insertReference("see", 3, 3, "a.txt"), { value: "see `a.txt` ", caret: 12 });
  assert.deepEqual(insertReference("see  now", 4, 4, "a.txt"), { value: "see `a.txt`  now", caret: 12 });
  assert.deepEqual(insertReference("replace THIS please", 8, 12, "b.md"), { value: "replace `b.md`  please", caret: 15 });
  assert.deepEqual(insertReference("", 0, 0, "odd`name"), { value: "``odd`name`` ", caret: 13 });
});

test("a refused upload says which limit, in the server's words", () => {
  assert.equal(
    uploadRefusal(413, JSON.stringify({ error: "the workspace would hold 2 MiB", limit: "limits.workspace_bytes" })),
    "Workspace full: the workspace would hold 2 MiB",
  );
  assert.equal(uploadRefusal(413, JSON.stringify({ error: "too big", limit: "limits.max_upload_bytes" })), "Too big: too big");
  assert.equal(uploadRefusal(403, JSON.stringify({ error: "not yours" })), "Not uploaded: not yours");
  assert.equal(uploadRefusal(502, "<html>bad gateway</html>"), "Not uploaded: the server answered HTTP 502");
  assert.equal(uploadRefusal(500, "null"), "Not uploaded: the server answered HTTP 500");
  assert.equal(tooBigText(70 * 1024, 64 * 1024), "Too big: 70 KiB; one upload may be at most 64 KiB (limits.max_upload_bytes).");
});

test("previews: images, the start of text files, nothing else", () => {
  assert.deepEqual(
    [
      "image/png",
      "text/plain",
      "text/javascript",
      "application/json",
      "application/yaml",
      "application/pdf",
      "application/jsonx",
      undefined,
    ].map(previewKind),
    ["image", "text", "text", "text", "text", "none", "none", "none"],
  );
});

test("a listing is read field by field: malformed entries are left out", () => {
  const listing = readListing({
    entries: [
      { path: "a", name: "a", type: "folder", size: 0, modified: "2026-01-01T00:00:00Z" },
      { path: "a/b.txt", name: "b.txt", type: "file", size: 3, modified: "2026-01-01T00:00:00Z", mime: "text/plain" },
      { path: "c.bin", type: "file" },
      { path: 5, type: "file" },
      { path: "d", type: "socket" },
      "e",
    ],
    limits: { max_upload_bytes: 10, workspace_bytes: 100 },
    used_bytes: 3,
    truncated: true,
  });
  assert.deepEqual(listing, {
    entries: [
      { path: "a", name: "a", type: "folder", size: 0, modified: "2026-01-01T00:00:00Z" },
      { path: "a/b.txt", name: "b.txt", type: "file", size: 3, modified: "2026-01-01T00:00:00Z", mime: "text/plain" },
      { path: "c.bin", name: "c.bin", type: "file", size: 0, modified: "" },
    ],
    limits: { max_upload_bytes: 10, workspace_bytes: 100 },
    used: 3,
    truncated: true,
  });
  assert.deepEqual(readListing(null), { entries: [], limits: null, used: 0, truncated: false });
});
