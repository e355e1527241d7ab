// The sandbox's command line and the child limits: what is mounted, what never is, what a limit's end says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeExit, inCgroup, prlimitOptions } from "../../lib/mcp/child-limits.ts";
import { sandboxedCommand, wouldExpose } from "../../lib/mcp/sandbox.ts";
import { ROOT } from "../helpers/harness.ts";

const hidden = ["/srv/agent/mcp_agent.config.yaml", "/srv/agent/mcp_agent.secrets.yaml", "/srv/agent/workspace", "/srv/agent/data"];

test("a folder that is, holds or sits in something hidden is never mounted", () => {
  assert.equal(wouldExpose("/srv/agent", hidden), true);
  assert.equal(wouldExpose("/", hidden), true);
  assert.equal(wouldExpose("/srv/agent/workspace/bob", hidden), true);
  assert.equal(wouldExpose("/srv/agent/node_modules", hidden), false);
  assert.equal(wouldExpose("/srv/agent/workspace2", hidden), false);
});

/** The pairs of a bwrap option: `--bind a b` → [a, b]. */
function mounts(args: string[], option: string): string[] {
  return args.flatMap((arg, index) => (arg === option ? [args[index + 1] ?? ""] : []));
}

test("the command line: writable only the given folders, its script and node_modules read-only, hidden ones out", () => {
  const script = `${ROOT}/tests/fixtures/hostile-mcp-server.mjs`;
  const { command, args } = sandboxedCommand({
    bwrap: "/usr/bin/bwrap",
    command: process.execPath,
    args: [script, "/srv/agent/data/sessions.db", "/"],
    cwd: "/srv/agent/workspace/alice",
    writable: ["/srv/agent/workspace/alice", "/srv/agent/data/users/alice/servers/x"],
    readOnly: ["/srv/agent"],
    network: false,
    hidden,
    prlimit: { path: "/usr/bin/prlimit", options: ["--nofile=64"] },
  });
  assert.equal(command, "/usr/bin/bwrap");
  assert.deepEqual(mounts(args, "--bind"), ["/srv/agent/workspace/alice", "/srv/agent/data/users/alice/servers/x"]);
  const readOnly = mounts(args, "--ro-bind");
  assert.ok(readOnly.includes(script), readOnly.join(" "));
  assert.ok(readOnly.includes(`${ROOT}/node_modules`));
  assert.ok(!readOnly.some((dir) => dir.startsWith("/srv/agent")), "nothing hidden, nor what holds it");
  assert.ok(!readOnly.includes("/") && !readOnly.includes("/etc"), "only chosen files of /etc");
  for (const flag of ["--unshare-pid", "--unshare-net", "--unshare-user", "--die-with-parent", "--disable-userns"])
    assert.ok(args.includes(flag), flag);
  assert.deepEqual(args.slice(args.indexOf("--") + 1, args.indexOf("--") + 4), ["/usr/bin/prlimit", "--nofile=64", "--"]);
  assert.deepEqual(mounts(args, "--chdir"), ["/srv/agent/workspace/alice"]);
  const withNetwork = sandboxedCommand({ bwrap: "b", command: "c", args: [], cwd: "/", writable: [], readOnly: [], network: true, hidden });
  assert.ok(!withNetwork.args.includes("--unshare-net"));
});

test("prlimit options: 0 turns a limit off; the process count only where it counts the child alone", () => {
  const limits = { memory_mb: 256, cpu_seconds: 10, open_files: 128, processes: 64, nice: 10 };
  assert.deepEqual(prlimitOptions(limits, true), [`--data=${256 * 1024 * 1024}`, "--cpu=10:11", "--nofile=128", "--nproc=64"]);
  assert.deepEqual(prlimitOptions(limits, false), [`--data=${256 * 1024 * 1024}`, "--cpu=10:11", "--nofile=128"]);
  assert.deepEqual(prlimitOptions({ memory_mb: 0, cpu_seconds: 0, open_files: 0, processes: 0, nice: 0 }, true), []);
});

test("a child's end names the limit it hit, with or without bwrap in between", () => {
  assert.match(describeExit(null, "SIGXCPU", "mcp.servers.x.limits"), /CPU time.*mcp\.servers\.x\.limits\.cpu_seconds/);
  assert.match(describeExit(128 + 24, null, "mcp.servers.x.limits"), /CPU time/);
  assert.match(describeExit(128 + 6, null, "k"), /SIGABRT.*k\.memory_mb/);
  assert.equal(describeExit(3, null, "k"), "the server process exited with code 3");
  assert.equal(describeExit(0, null, "k"), "the server process exited");
});

test("a command in a cgroup: the shell joins it, then becomes the command", () => {
  assert.deepEqual(inCgroup("/sys/fs/cgroup/pids/x/cgroup.procs", "bwrap", ["--", "node"]), {
    command: "/bin/sh",
    args: ["-c", 'echo $$ > "$0" || exit 126; unset PWD; exec "$@"', "/sys/fs/cgroup/pids/x/cgroup.procs", "bwrap", "--", "node"],
  });
});
