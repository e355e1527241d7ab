// lib/log-file.ts through createLogger: a log file that cannot be written (a full disk) is
// reported once, and logging resumes by itself when it can be written again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { createLogger } from "../../lib/log.ts";
import { until, type Frame } from "../helpers/harness.ts";

test("a log file that cannot be written is reported once; logging resumes when it can be written again", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "log-outage-"));
  const file = path.join(dir, "logs", "server.jsonl");
  const consoleLines: string[] = [];
  const consoleStream = new PassThrough();
  consoleStream.on("data", (chunk: Buffer) => consoleLines.push(chunk.toString()));
  // A full disk, as the kernel reports it: every write to /dev/full fails with ENOSPC.
  mkdirSync(path.dirname(file));
  symlinkSync("/dev/full", file);
  const log = createLogger({ level: "info", console: false, filePath: file, secrets: [], consoleStream, fileRetryMs: 100 });
  let n = 0;
  await until(() => {
    log.info("during_outage", { n: n++ });
    return consoleLines.some((line) => line.includes("log file error"));
  }, "the outage reported");
  for (let more = 0; more < 20; more++) log.info("during_outage", { n: n++ });
  // Space returns: the path is an ordinary file again.
  unlinkSync(file);
  await until(() => {
    log.info("after_outage", { n: n++ });
    return existsSync(file) && readFileSync(file, "utf8").includes("after_outage");
  }, "logging resumed");
  await until(() => consoleLines.some((line) => line.includes("writable again")), "the recovery reported");
  assert.equal(consoleLines.filter((line) => line.includes("log file error")).length, 1, "reported once, not per line");
  const lines = readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Frame);
  const resumed = lines.find((line) => line.event === "log_resumed");
  assert.ok(resumed && Number(resumed.dropped_lines) >= 20, `the file says lines were lost: ${JSON.stringify(resumed)}`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});
