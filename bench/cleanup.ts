// Everything the bench starts or creates is registered here, so that it is undone on every
// path: the phase's own `finally`, an error, or Ctrl-C (run.ts calls cleanupAll on signals).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

type Cleanup = () => Promise<void> | void;

const pending = new Set<Cleanup>();

/** Registers a clean-up; the returned function runs it (once) and unregisters it. */
export function onCleanup(cleanup: Cleanup): () => Promise<void> {
  let done = false;
  const run = async () => {
    if (done) return;
    done = true;
    pending.delete(cleanup);
    await cleanup();
  };
  pending.add(cleanup);
  return run;
}

/** Runs every registered clean-up, newest first; never throws. */
export async function cleanupAll(): Promise<void> {
  for (const cleanup of [...pending].reverse()) {
    pending.delete(cleanup);
    try {
      await cleanup();
    } catch {
      // Best effort: the next clean-up must still run.
    }
  }
}

let tempRoot: string | undefined;

/** Where temp folders are made (default: the system's temp folder). */
export function setTempRoot(dir: string | undefined): void {
  tempRoot = dir;
}

/** A temp folder removed at clean-up. */
export function tempDir(prefix: string): { dir: string; remove: () => Promise<void> } {
  const dir = mkdtempSync(path.join(tempRoot ?? tmpdir(), `mcp-agent-bench-${prefix}-`));
  const remove = onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, remove };
}
