// Workspace files in a cluster: an upload through one instance reaches the user's tabs on the others
// (files_changed goes through the session's fan-out, or straight to Redis when the instance that
// took the upload has no session of that user). Real redis-server, nginx and instance processes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { clusterSkip, startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { baseConfig, connect } from "../helpers/harness.ts";
import { startModelServer, type ModelServer } from "../helpers/model-server.ts";

const skip = clusterSkip();
let model: ModelServer;
let cluster: TestCluster;

before(async () => {
  if (skip) return;
  model = await startModelServer();
  cluster = await startTestCluster({
    instances: 2,
    config: baseConfig(model.baseUrl),
    secrets: { openai: { api_key: "sk-test-files-cluster" } },
  });
});
after(async () => {
  await cluster?.close();
  await model?.close();
});

const upload = (base: string, path: string, body: string) =>
  fetch(`${base}/files/${path}`, { method: "PUT", headers: { "x-requested-with": "test" }, body });

test("an upload through one instance is announced to the user's tabs on every instance", { skip }, async () => {
  const [first, second] = cluster.instances;
  assert.ok(first && second);
  const wsOf = (url: string, user: string) => `${url.replace(/^http/, "ws")}/ws/${user}?stream=1`;
  // Tabs of one user on both instances: the second instance has the session, fans out locally and to Redis.
  const here = await connect(wsOf(first.url, "cl_files"));
  const there = await connect(wsOf(second.url, "cl_files"));
  // A user with a tab on the first instance only: the second has no session of theirs.
  const lonely = await connect(wsOf(first.url, "cl_lonely"));
  try {
    for (const client of [here, there, lonely]) await client.nextMatching((frame) => frame.type === "welcome");
    assert.equal((await upload(second.url, "cl_files/report.csv", "a,b\n")).status, 201);
    const expected = { type: "files_changed", user_id: "cl_files", cause: "upload", paths: ["report.csv"] };
    assert.deepEqual(await there.nextMatching((frame) => frame.type === "files_changed"), expected);
    assert.deepEqual(await here.nextMatching((frame) => frame.type === "files_changed"), expected);

    assert.equal((await upload(second.url, "cl_lonely/notes.md", "hi")).status, 201);
    assert.deepEqual(await lonely.nextMatching((frame) => frame.type === "files_changed"), {
      type: "files_changed",
      user_id: "cl_lonely",
      cause: "upload",
      paths: ["notes.md"],
    });
    // The instances share the workspace folder: the first lists what the second received.
    const listed = (await (await fetch(`${first.url}/files/cl_lonely`)).json()) as { entries: { path: string }[] };
    assert.deepEqual(
      listed.entries.map((entry) => entry.path),
      ["notes.md"],
    );
  } finally {
    await Promise.all([here.close(), there.close(), lonely.close()]);
  }
});
