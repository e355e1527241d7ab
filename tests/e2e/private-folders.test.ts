// Folders that already existed with loose modes (an older version, a loose umask, made by hand)
// are owner-only once the server has started: the workspace root and each user's workspace, the
// data folder and the log folder. The config folder itself is left as it is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, statSync } from "node:fs";
import path from "node:path";
import { startModelServer } from "../helpers/model-server.ts";
import { baseConfig, makeConfigDir, readLog, startServer, until } from "../helpers/harness.ts";

const mode = (dir: string) => (statSync(dir).mode & 0o777).toString(8);

test("existing workspace, data and log folders are tightened to 0700 at start", async () => {
  const model = await startModelServer();
  const configDir = makeConfigDir({
    config: baseConfig(model.baseUrl, {}, { session: { store: "sqlite" } }),
    secrets: { openai: { api_key: "sk-test-folders" } },
  });
  chmodSync(configDir, 0o755);
  const loose = ["workspace", "workspace/alice", "workspace/bob/notes", "data", "logs"].map((dir) => path.join(configDir, dir));
  for (const dir of loose) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
  }
  const running = await startServer({ configDir });
  try {
    for (const dir of ["workspace", "workspace/alice", "workspace/bob", "data", "logs"])
      assert.equal(mode(path.join(configDir, dir)), "700", dir);
    assert.equal(mode(configDir), "755", "the config folder is not the server's to lock");
    // Each change is logged (the log is written as it goes: wait for the line).
    await until(
      () =>
        readLog(running.logPath).some(
          (line) => line.event === "folder_tightened" && line.path === path.join(configDir, "workspace", "alice") && line.was === "755",
        ),
      "the change to be logged",
    );
  } finally {
    await running.close();
    await model.close();
  }
});
