// The files API's pure parts: Range decisions, Content-Disposition, path parsing, MIME types,
// and which tool calls count as changing the workspace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFilesPath } from "../../lib/files/files-api.ts";
import { mimeTypeOf } from "../../lib/files/mime.ts";
import { attachmentDisposition, decideRange } from "../../lib/files/range.ts";
import { changesWorkspace, workspaceServers } from "../../lib/files/workspace-writes.ts";
import { formatBytes } from "../../lib/files/format.ts";
import { mcpServerDefaults } from "../../lib/config.ts";
import { filesUrl } from "../../client/files.ts";
import { parseOptions } from "../../client/options.ts";

test("Range: one range, suffixes, open ends; unsatisfiable and ignored cases", () => {
  assert.deepEqual(decideRange(undefined, 10), { kind: "whole" });
  assert.deepEqual(decideRange("bytes=0-3", 10), { kind: "partial", start: 0, end: 3 });
  assert.deepEqual(decideRange("bytes=4-", 10), { kind: "partial", start: 4, end: 9 });
  assert.deepEqual(decideRange("bytes=-3", 10), { kind: "partial", start: 7, end: 9 });
  assert.deepEqual(decideRange("bytes=-30", 10), { kind: "partial", start: 0, end: 9 });
  assert.deepEqual(decideRange("bytes=5-100", 10), { kind: "partial", start: 5, end: 9 });
  assert.deepEqual(decideRange("bytes=10-", 10), { kind: "unsatisfiable" });
  assert.deepEqual(decideRange("bytes=-0", 10), { kind: "unsatisfiable" });
  assert.deepEqual(decideRange("bytes=0-", 0), { kind: "unsatisfiable" });
  for (const ignored of ["bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=-", "nonsense"]) {
    assert.deepEqual(decideRange(ignored, 10), { kind: "whole" }, ignored);
  }
});

test("Content-Disposition: attachment, an ASCII fallback and the exact name (RFC 6266)", () => {
  assert.equal(attachmentDisposition("report.pdf"), `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`);
  assert.equal(attachmentDisposition('a"b\\c%.txt'), `attachment; filename="a_b_c_.txt"; filename*=UTF-8''a%22b%5Cc%25.txt`);
  assert.equal(
    attachmentDisposition("naïve (1)'s.md"),
    `attachment; filename="na_ve (1)'s.md"; filename*=UTF-8''na%C3%AFve%20%281%29%27s.md`,
  );
  assert.doesNotMatch(attachmentDisposition("x\r\nSet-Cookie: a=b"), /[\r\n]/);
});

test("the path of a request: user and decoded path; bad encodings, NUL bytes and bad user ids are refused", () => {
  assert.deepEqual(parseFilesPath("/files/alice"), { ok: true, target: { userId: "alice", relative: "" } });
  assert.deepEqual(parseFilesPath("/files/alice/"), { ok: true, target: { userId: "alice", relative: "" } });
  assert.deepEqual(parseFilesPath("/files/alice/a%20b/c%2Fd.txt"), { ok: true, target: { userId: "alice", relative: "a b/c/d.txt" } });
  assert.deepEqual(
    parseFilesPath("/files/alice/%2e%2e/bob"),
    { ok: true, target: { userId: "alice", relative: "../bob" } },
    "decoded; the containment check refuses it",
  );
  assert.equal(parseFilesPath("/files/alice/%E0%A4%A").ok, false);
  assert.equal(parseFilesPath("/files/alice/a%00b").ok, false);
  assert.equal(parseFilesPath("/files/..").ok, false);
  assert.equal(parseFilesPath("/files/a%2Fb/x").ok, false);
  assert.equal(parseFilesPath("/files").ok, false);
});

test("MIME types by extension, octet-stream otherwise", () => {
  assert.equal(mimeTypeOf("a.CSV"), "text/csv");
  assert.equal(mimeTypeOf("dir/photo.jpeg"), "image/jpeg");
  assert.equal(mimeTypeOf("sheet.xlsx"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  assert.equal(mimeTypeOf("Makefile"), "application/octet-stream");
  assert.equal(mimeTypeOf("x.exe"), "application/octet-stream");
});

test("files_changed follows the filesystem server's tools that may write", () => {
  const entry = mcpServerDefaults();
  const servers = workspaceServers({ filesystem: entry, fetch: { ...entry, builtin: "fetch" }, other: entry });
  assert.deepEqual([...servers], ["filesystem"]);
  for (const tool of ["write_file", "edit_file", "create_directory", "move_file", "some_future_tool"]) {
    assert.equal(changesWorkspace(servers, "filesystem", tool), true, tool);
  }
  for (const tool of [
    "read_file",
    "read_text_file",
    "read_media_file",
    "read_multiple_files",
    "list_directory",
    "directory_tree",
    "search_files",
    "get_file_info",
    "list_allowed_directories",
  ]) {
    assert.equal(changesWorkspace(servers, "filesystem", tool), false, tool);
  }
  assert.equal(changesWorkspace(servers, "other", "write_file"), false, "a server not rooted in the workspace");
});

test("sizes read as people read them", () => {
  assert.equal(formatBytes(512), "512 bytes");
  assert.equal(formatBytes(10 * 1024 * 1024), "10 MiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
});

test("the CLI's files URL follows --url: scheme, path prefix, user; no stream flag or token in it", () => {
  const at = (url: string, user: string) => parseOptions(["--url", url, "--user", user], {});
  assert.equal(filesUrl(at("ws://127.0.0.1:8000", "alice")), "http://127.0.0.1:8000/files/alice");
  assert.equal(
    filesUrl(at("https://example.com/agent/", "bob"), "my notes/a b.md"),
    "https://example.com/agent/files/bob/my%20notes/a%20b.md",
  );
  assert.equal(filesUrl(at("wss://h:9", "c.d"), "x"), "https://h:9/files/c.d/x");
});
