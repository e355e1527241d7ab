// The CLI client and the workspace files: --upload before the messages, and /files, /download, /upload in a
// terminal (a pseudo-terminal from util-linux `script`), as real client processes against the real
// server with a token, the real filesystem MCP server and the scripted model server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { baseConfig, filesystemEntry, ROOT, startServer, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";

const CLIENT = path.join(ROOT, "client.ts");
const TOKEN = "cli-files-token";

let model: ModelServer;
let running: RunningServer;
let local: string;
const children = new Set<ChildProcess>();

before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "ok" } });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: filesystemEntry },
      { server: { auth_token: TOKEN }, limits: { max_upload_bytes: 100_000 } },
    ),
    secrets: { openai: { api_key: "sk-test-files-cli" } },
  });
  local = mkdtempSync(path.join(tmpdir(), "files-cli-"));
});
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await running.close();
  await model.close();
  rmSync(local, { recursive: true, force: true });
});

/** A client process; its output is awaited by pattern, never by sleeping. */
function start(command: string, args: string[], cwd = ROOT) {
  const child = spawn(command, args, {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TERM: "xterm", NO_COLOR: "1" },
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  let cursor = 0;
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((listener) => listener());
  child.stdout.on("data", (chunk: Buffer) => ((stdout += chunk.toString()), notify()));
  child.stderr.on("data", (chunk: Buffer) => ((stderr += chunk.toString()), notify()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("close", (code) => {
      children.delete(child);
      notify();
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    exited,
    write: (text: string) => child.stdin.write(text),
    end: () => child.stdin.end(),
    /** Waits until stdout after the last match matches `pattern`. */
    async expect(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = pattern.exec(stdout.slice(cursor));
        if (found) {
          cursor += found.index + found[0].length;
          return found;
        }
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`no ${pattern}.\nstdout: ${JSON.stringify(stdout)}\nstderr: ${stderr}`);
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            listeners.delete(done);
            resolve();
          };
          const timer = setTimeout(done, deadline - Date.now());
          listeners.add(done);
        });
      }
    },
  };
}

// tsx by its full URL: the interactive client runs in another folder, where `tsx` does not resolve.
const TSX = import.meta.resolve("tsx");
const clientArgs = (user: string) => ["--import", TSX, CLIENT, "--url", running.url, "--user", user, "--token", TOKEN];
const workspace = (user: string) => path.join(running.configDir, "workspace", user);

test("--upload sends the files before the messages; the agent reads them", async () => {
  const binary = randomBytes(50_000);
  writeFileSync(path.join(local, "data.bin"), binary);
  writeFileSync(path.join(local, "notes v1.txt"), "remember the milk\n");
  const client = start(process.execPath, [
    ...clientArgs("cli_up"),
    "--upload",
    path.join(local, "data.bin"),
    "--upload",
    path.join(local, "notes v1.txt"),
    "-m",
    'CALL filesystem_read_text_file {"path":"notes v1.txt"}',
  ]);
  client.end();
  const { code, stdout, stderr } = await client.exited;
  assert.equal(code, 0, stderr);
  assert.match(stderr, /uploaded .*data\.bin \(49 KiB\) to the workspace as data\.bin/);
  assert.match(stderr, /uploaded .*notes v1\.txt \(18 B\) to the workspace as notes v1\.txt/);
  assert.equal(stdout, "RESULT remember the milk\n\n", "stdout carries only the answer");
  assert.deepEqual(readFileSync(path.join(workspace("cli_up"), "data.bin")), binary);
});

test("a failed --upload stops before any message: missing file, too big, wrong token", async () => {
  const requests = model.requests.length;
  const missing = start(process.execPath, [...clientArgs("cli_fail"), "--upload", path.join(local, "nope.txt"), "-m", "hi"]);
  missing.end();
  const first = await missing.exited;
  assert.equal(first.code, 1);
  assert.match(first.stderr, /✖ cannot upload .*nope\.txt: no such file/);

  writeFileSync(path.join(local, "big.bin"), Buffer.alloc(100_001));
  const big = start(process.execPath, [...clientArgs("cli_fail"), "--upload", path.join(local, "big.bin"), "-m", "hi"]);
  big.end();
  const second = await big.exited;
  assert.equal(second.code, 1);
  assert.match(second.stderr, /✖ cannot upload .*big\.bin: HTTP 413: the file is larger than 97\.7 KiB.*limits\.max_upload_bytes/);
  assert.equal(model.requests.length, requests, "no message was sent");
  assert.equal(existsSync(workspace("cli_fail")) ? readdirSync(workspace("cli_fail")).length : 0, 0, "nothing was left behind");
});

test("interactive: /upload, /files, the agent writes a file, /download saves it byte for byte", async () => {
  writeFileSync(path.join(local, "photo.jpg"), randomBytes(2000));
  const command = [process.execPath, ...clientArgs("cli_tty")].map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(" ");
  const client = start("script", ["-qfec", command, "/dev/null"], local);
  await client.expect(/you> /);
  client.write("/upload photo.jpg\r");
  await client.expect(/uploaded photo\.jpg to the workspace as photo\.jpg \(2\.0 KiB\)/);
  client.write(`CALL filesystem_write_file ${JSON.stringify({ path: "summary.md", content: "# Summary\nall good\n" })}\r`);
  await client.expect(/agent> RESULT Successfully wrote/);
  await client.expect(/you> /);
  client.write("/files\r");
  await client.expect(/files of cli_tty:/);
  await client.expect(/2\.0 KiB\s+\S+ \S+\s+photo\.jpg/);
  await client.expect(/\d+ B\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+summary\.md/);
  await client.expect(/used/);
  client.write('/download summary.md "saved copy.md"\r');
  await client.expect(/saved summary\.md to saved copy\.md \(\d+ B\)/);
  assert.deepEqual(readFileSync(path.join(local, "saved copy.md")), readFileSync(path.join(workspace("cli_tty"), "summary.md")));
  client.write("/download nope.md\r");
  await client.expect(/✖ cannot download nope\.md: HTTP 404: no such file or folder: nope\.md/);
  client.write("/download\r");
  await client.expect(/✖ usage: \/download PATH \[DEST\]/);
  client.write("quit\r");
  const { code } = await client.exited;
  assert.equal(code, 0);
  assert.deepEqual(
    readdirSync(local).filter((name) => name.includes(".part")),
    [],
    "no temp file left",
  );
});
