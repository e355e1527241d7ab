// Turn overhead: a one-tool-call turn through our server (store sqlite, the default, and memory)
// against the bare baseline, for one user sequentially and many users at once. The three
// servers run side by side and take turns in blocks, so drift in the machine hits them alike.
import { byName, cpuPerTurn, measure, rotate, round2, startContenders, stopContenders, type Contender } from "../contenders.ts";
import { BenchClient, closedLoop, connectMany, summarize, type Summary } from "../load.ts";
import type { BenchModel } from "../model.ts";
import type { Settings } from "../options.ts";
import { MB, treeMemory } from "../../tests/helpers/proc.ts";
import { ratioFigure, type Figure } from "../report.ts";
import { benchConfig, echoEntry } from "../targets.ts";

export const TURN_GOAL = 1.1;
const MESSAGE = "Please call the echo tool.";

type Name = "baseline" | "sqlite" | "memory";

interface Users {
  sequential: BenchClient | undefined;
  concurrent: BenchClient[];
}

export async function runTurns(
  model: BenchModel,
  settings: Settings,
  say: (text: string) => void,
): Promise<{ figures: Figure[]; raw: Record<string, unknown> }> {
  const { turns, latencies } = settings;
  const config = (store: "sqlite" | "memory") =>
    benchConfig({ modelUrl: model.baseUrl, servers: { test: echoEntry() }, store, log: "file" });
  say("turns: starting the baseline and our server (store sqlite, store memory)");
  const contenders = await startContenders<Name>("turns", [
    { name: "baseline", kind: "baseline", label: "baseline", config: config("memory") },
    { name: "sqlite", kind: "ours", label: "ours (store sqlite)", config: config("sqlite") },
    { name: "memory", kind: "ours", label: "ours (store memory)", config: config("memory") },
  ]);
  const users = new Map<Contender<Name>, Users>(contenders.map((contender) => [contender, { sequential: undefined, concurrent: [] }]));
  const usersOf = (contender: Contender<Name>): Users => {
    const found = users.get(contender);
    if (!found) throw new Error("no users");
    return found;
  };
  const raw: Record<string, unknown> = { mcp_server: "bench/echo-mcp-server.mjs (tool test_echo)", settings: turns };
  try {
    model.setLatency(0);
    const warmups: Record<string, number> = {};
    for (const contender of contenders) {
      const started = performance.now();
      const own = usersOf(contender);
      own.sequential = await BenchClient.connect(contender.target.wsUrl, "seq-user");
      const ids = Array.from({ length: turns.concurrentUsers }, (_, n) => `user-${String(n).padStart(4, "0")}`);
      own.concurrent = await connectMany(contender.target.wsUrl, ids);
      // Warm-up: every user's MCP child is started and used, the code paths are hot.
      for (let n = 0; n < turns.sequentialWarmup; n++) await own.sequential.turn(MESSAGE);
      await closedLoop(own.concurrent, 2, MESSAGE);
      warmups[contender.name] = round2(performance.now() - started);
      say(
        `turns: ${contender.target.name} warm (${turns.concurrentUsers + 1} users, their MCP children started) in ${(warmups[contender.name] / 1000).toFixed(1)} s`,
      );
    }
    model.assertToolsOk("turns warm-up");
    raw.warmup_ms = warmups;
    raw.memory_after_warmup_mb = Object.fromEntries(
      contenders.map((contender) => {
        const tree = treeMemory(contender.target.pid);
        return [
          contender.name,
          {
            server_rss: tree.root.rssBytes / MB,
            total_rss: tree.totalRssBytes / MB,
            total_pss: tree.totalPssBytes / MB,
            children: tree.descendants.length,
          },
        ];
      }),
    );

    for (const latency of latencies) {
      model.setLatency(latency);
      const perBlock = Math.ceil(turns.sequentialTurns / turns.blocks);
      for (let block = 0; block < turns.blocks; block++) {
        for (const contender of rotate(contenders, block)) {
          const client = usersOf(contender).sequential;
          if (!client) throw new Error("no sequential client");
          const count = Math.min(perBlock, turns.sequentialTurns - block * perBlock);
          await measure(contender, `sequential.${latency}ms`, async () => {
            const durations: number[] = [];
            for (let n = 0; n < count; n++) durations.push(await client.turn(MESSAGE));
            return durations;
          });
        }
      }
      say(`turns: model latency ${latency} ms, 1 user sequential done`);
      for (let round = 0; round < turns.concurrentRounds; round++) {
        for (const contender of rotate(contenders, round)) {
          await measure(contender, `concurrent.${latency}ms`, () => closedLoop(usersOf(contender).concurrent, 1, MESSAGE));
        }
      }
      say(`turns: model latency ${latency} ms, ${turns.concurrentUsers} users concurrent done`);
      model.assertToolsOk(`turns at ${latency} ms`);
    }

    const baseline = byName(contenders, "baseline");
    const cpu = cpuPerTurn(contenders);
    const figures: Figure[] = [];
    const summaries: Record<string, Summary> = {};
    for (const latency of latencies) {
      for (const [shape, label] of [
        ["sequential", "1 user sequential"],
        ["concurrent", `${turns.concurrentUsers} users concurrent`],
      ] as const) {
        const key = `${shape}.${latency}ms`;
        const base = summarize(baseline.samples.get(key) ?? []);
        summaries[`${shape}.baseline.${latency}ms`] = base;
        for (const store of ["sqlite", "memory"] as const) {
          const ours = summarize(byName(contenders, store).samples.get(key) ?? []);
          summaries[`${shape}.${store}.${latency}ms`] = ours;
          for (const quantile of ["p50", "p99"] as const) {
            figures.push(
              ratioFigure(
                `turn.${shape}.${quantile}.${store}.${latency}ms`,
                `turn ${quantile}, ${label}, model ${latency} ms, store ${store}${store === "sqlite" ? " (default)" : ""}`,
                "ms",
                ours[quantile],
                base[quantile],
                TURN_GOAL,
              ),
            );
          }
        }
        // The server's CPU per turn: the overhead itself, and far less noisy than wall time on a shared machine.
        for (const store of ["sqlite", "memory"] as const) {
          const ours = cpu[store]?.[key]?.server ?? Number.NaN;
          const base = cpu.baseline?.[key]?.server ?? Number.NaN;
          figures.push(
            ratioFigure(
              `cpu.server_per_turn.${shape}.${store}.${latency}ms`,
              `server CPU per turn, ${label}, model ${latency} ms, store ${store}`,
              "ms",
              ours,
              base,
              null,
            ),
          );
        }
      }
    }
    raw.summaries = summaries;
    // Where the CPU goes, per turn: the server under test, its MCP children, and the bench process
    // (the scripted model server and the WebSocket clients; the same work for every contender).
    raw.cpu_ms_per_turn = cpu;
    raw.samples_ms = Object.fromEntries(
      contenders.map((contender) => [
        contender.name,
        Object.fromEntries([...contender.samples].map(([key, samples]) => [key, samples.map(round2)])),
      ]),
    );
    return { figures, raw };
  } finally {
    for (const own of users.values()) {
      own.sequential?.terminate();
      for (const client of own.concurrent) client.terminate();
    }
    const left = await stopContenders(contenders);
    if (left > 0) say(`turns: killed ${left} processes the servers left behind`);
  }
}
