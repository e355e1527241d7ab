// `npx tsx bench/profile.ts [--target sqlite|memory|baseline] [--users 200] [--rounds 25] [--top 30]`
// A CPU profile (node --cpu-prof) of one server under the turns part's concurrent load: `users`
// users each with a one-tool-call turn in flight, `rounds` times, model latency 0. Prints where
// the server's CPU went (self time by package or file, and the top functions) and keeps the
// .cpuprofile (open it in Chrome DevTools) in bench/results/.
import { mkdirSync, readdirSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { cleanupAll, tempDir } from "./cleanup.ts";
import { closedLoop, connectMany } from "./load.ts";
import { startBenchModel } from "./model.ts";
import { benchConfig, echoEntry, ROOT, startTarget, writeConfig } from "./targets.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a function lives, for grouping: a package, one of our files, node's internals, or V8's pseudo-frames. */
function placeOf(url: string, functionName: string): string {
  if (!url) return `(${functionName || "anonymous"})`.replace(/^\(\((.*)\)\)$/, "($1)");
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packageMatch?.[1]) return packageMatch[1];
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  return path.relative(ROOT, url.replace(/^file:\/\//, ""));
}

export function summarizeProfile(profile: Profile, top: number): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
  const places = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === "(idle)") continue;
    total += us;
    const place = placeOf(frame.url, frame.functionName);
    places.set(place, (places.get(place) ?? 0) + us);
    const name = `${frame.functionName || "(anonymous)"} ${place}${frame.url ? `:${frame.lineNumber + 1}` : ""}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / Math.max(1, total)).toFixed(1).padStart(5)}%`;
  const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `busy (not idle) CPU in the profile: ${(total / 1000).toFixed(0)} ms`,
    "",
    "self time by package / file:",
    ...sorted(places).map(([place, us]) => `${ms(us)}  ${place}`),
    "",
    "top functions by self time:",
    ...sorted(functions).map(([name, us]) => `${ms(us)}  ${name}`),
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: "string", default: "sqlite" },
      users: { type: "string", default: "200" },
      rounds: { type: "string", default: "25" },
      top: { type: "string", default: "30" },
    },
  });
  const target = values.target;
  if (target !== "sqlite" && target !== "memory" && target !== "baseline")
    throw new Error(`--target is sqlite, memory or baseline; got ${target}`);
  const users = Number(values.users);
  const rounds = Number(values.rounds);
  const model = await startBenchModel();
  const { dir } = tempDir(`profile-${target}`);
  const profileDir = path.join(dir, "profile");
  mkdirSync(profileDir);
  const config = benchConfig({
    modelUrl: model.baseUrl,
    servers: { test: echoEntry() },
    store: target === "sqlite" ? "sqlite" : "memory",
    log: "file",
  });
  const server = await startTarget(target === "baseline" ? "baseline" : "ours", `profile ${target}`, writeConfig(dir, config), {}, [
    "--cpu-prof",
    `--cpu-prof-dir=${profileDir}`,
  ]);
  try {
    const clients = await connectMany(
      server.wsUrl,
      Array.from({ length: users }, (_, n) => `user-${n}`),
    );
    await closedLoop(clients, 2, "Please call the echo tool.");
    const started = performance.now();
    for (let round = 0; round < rounds; round++) await closedLoop(clients, 1, "Please call the echo tool.");
    console.error(`${users * rounds} turns in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const client of clients) client.terminate();
  } finally {
    await server.stop();
    await model.close();
  }
  const file = readdirSync(profileDir).find((name) => name.endsWith(".cpuprofile"));
  if (!file) throw new Error("no .cpuprofile written");
  const profile = JSON.parse(readFileSync(path.join(profileDir, file), "utf8")) as Profile;
  const kept = path.join(ROOT, "bench/results", `profile-${target}.cpuprofile`);
  mkdirSync(path.dirname(kept), { recursive: true });
  renameSync(path.join(profileDir, file), kept);
  console.log(summarizeProfile(profile, Number(values.top)));
  console.log(`\nprofile: ${path.relative(process.cwd(), kept)}`);
}

try {
  await main();
} finally {
  await cleanupAll();
}
