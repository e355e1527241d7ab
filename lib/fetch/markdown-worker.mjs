// Worker threads do not inherit tsx's loader: register it here, then load the TypeScript worker.
import { register } from "tsx/esm/api";

register();
await import("./markdown-worker.ts");
// A page's time budget starts once the worker can convert, not while it loads.
const { parentPort } = await import("node:worker_threads");
parentPort?.postMessage({ ready: true });
