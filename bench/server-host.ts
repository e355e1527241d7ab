// Our server in a child process, as server.ts's main() builds it (loadConfig, loggerFromConfig,
// createAgentServer, listen), plus an IPC channel for the churn benchmark: run the sweep now,
// and read the process's memory after a forced GC. Needs `node --expose-gc`.
//
//   node --expose-gc --import tsx bench/server-host.ts --config <file> --port 0   (with an IPC channel)
import { parseArgs } from "node:util";
import { loadConfig } from "../lib/config.ts";
import { loggerFromConfig } from "../lib/log.ts";
import { createAgentServer } from "../server.ts";

export type HostRequest = { id: number; type: "sweep" } | { id: number; type: "memory" };
export type HostReply =
  | { id: number; type: "swept"; count: number }
  | { id: number; type: "memory"; rssBytes: number; heapUsedBytes: number; externalBytes: number; sessions: number }
  | { id: number; type: "error"; error: string };

function isHostRequest(value: unknown): value is HostRequest {
  return (
    typeof value === "object" &&
    value !== null &&
    "id" in value &&
    typeof value.id === "number" &&
    "type" in value &&
    (value.type === "sweep" || value.type === "memory")
  );
}

/** How long V8 takes to hand freed pages back after a GC: RSS read sooner swings by ±30 MB. */
const SETTLE_MS = 500;

async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  // Twice, with a turn of the event loop between: finalizers and weak refs need a second pass.
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: "string" }, port: { type: "string", default: "0" } } });
  if (!values.config || !process.send)
    throw new Error("usage: node --expose-gc --import tsx bench/server-host.ts --config <file> (with an IPC channel)");
  const config = loadConfig(values.config, {});
  const log = loggerFromConfig(config);
  const server = createAgentServer({ config, log, host: "127.0.0.1", port: Number(values.port) });
  const { url } = await server.listen();
  const reply = (message: HostReply) => process.send?.(message);
  process.on("message", (message: unknown) => {
    if (!isHostRequest(message)) return;
    const { id } = message;
    const work =
      message.type === "sweep"
        ? server.sessions.sweep(Date.now() + 1e9).then((swept): HostReply => ({ id, type: "swept", count: swept.length }))
        : collectGarbage().then((): HostReply => {
            const usage = process.memoryUsage();
            return {
              id,
              type: "memory",
              rssBytes: usage.rss,
              heapUsedBytes: usage.heapUsed,
              externalBytes: usage.external,
              sessions: server.sessions.size,
            };
          });
    work.then(reply, (error: unknown) => reply({ id, type: "error", error: (error as Error).message }));
  });
  const shutdown = () => {
    setTimeout(() => process.exit(0), 8000).unref();
    void server
      .close()
      .then(() => log.close())
      .finally(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  process.once("disconnect", shutdown);
  console.log(`listening on ${url}`);
}

await main();
