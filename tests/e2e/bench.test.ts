// The benchmark suite must not rot. Runs `npm run bench -- --quick` and checks that it
// ran and reported every figure. Never a timing assertion: how fast is the bench's job.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CHROMIUM } from "../helpers/browser.ts";
import { ROOT } from "../helpers/harness.ts";

interface Figure {
  key: string;
  label: string;
  unit: string;
  ours: number;
  baseline: number;
  ratio: number | null;
  goal: string;
  met: boolean | null;
}

interface Results {
  date: string;
  mode: string;
  machine: { os: string; cpus: number; node: string; totalMemoryBytes: number };
  settings: { latencies: number[] };
  leftover_processes: number;
  figures: Figure[];
  raw: Record<string, unknown>;
}

const LATENCIES = [0, 50];

function expectedKeys(): string[] {
  const keys = ["ready.median", "scale.rss_total", "churn.rss_growth.memory", "churn.children_left"];
  keys.push("filesystem.rss_active", "filesystem.rss_idle_sockets", "filesystem.loop_delay.tree", "filesystem.loop_delay.search");
  for (const latency of LATENCIES) keys.push(`filesystem.first_answer.p99.${latency}ms`);
  // The page's render needs chromium; the bench says so and leaves that figure out without it.
  keys.push("history.frame", ...(CHROMIUM ? ["history.render"] : []));
  for (const latency of LATENCIES) {
    for (const shape of ["sequential", "concurrent"]) {
      for (const store of ["sqlite", "memory"]) {
        for (const quantile of ["p50", "p99"]) keys.push(`turn.${shape}.${quantile}.${store}.${latency}ms`);
        keys.push(`cpu.server_per_turn.${shape}.${store}.${latency}ms`);
      }
    }
    keys.push(`scale.p99_overhead.${latency}ms`);
  }
  return keys;
}

test("npm run bench -- --quick runs and reports every figure", { timeout: 300_000 }, async () => {
  // Its own temp folder: at the end it must be empty (the bench removes everything it made).
  const scratch = mkdtempSync(path.join(tmpdir(), "bench-test-"));
  const out = path.join(scratch, "results.json");
  const work = path.join(scratch, "tmp");
  try {
    mkdirSync(work);
    const args = ["--import", "tsx", "bench/run.ts", "--quick", "--latency", LATENCIES.join(","), "--out", out, "--tmpdir", work];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (exitCode) => resolve(exitCode)));
    assert.equal(code, 0, `the bench failed:\n${stderr.slice(-4000)}`);

    // The Markdown table on stdout.
    assert.match(stdout, /^\| figure \| ours \| baseline \| ratio \| goal \| met\? \|$/m);

    const results = JSON.parse(readFileSync(out, "utf8")) as Results;
    assert.equal(results.mode, "quick");
    assert.ok(!Number.isNaN(Date.parse(results.date)), "the date");
    assert.ok(
      results.machine.os && results.machine.node && results.machine.cpus > 0 && results.machine.totalMemoryBytes > 0,
      "the machine",
    );
    assert.deepEqual(results.settings.latencies, LATENCIES);
    assert.equal(results.leftover_processes, 0, "no process of the run outlives it");

    const byKey = new Map(results.figures.map((figure) => [figure.key, figure]));
    for (const key of expectedKeys()) {
      const figure = byKey.get(key);
      assert.ok(figure, `figure ${key} is reported`);
      assert.ok(stdout.includes(`| ${figure.label} |`), `figure ${key} is in the table`);
      assert.ok(Number.isFinite(figure.ours) && Number.isFinite(figure.baseline), `${key}: finite numbers`);
      assert.ok(figure.ratio === null || Number.isFinite(figure.ratio), `${key}: the ratio`);
      assert.ok(figure.met === null || typeof figure.met === "boolean", `${key}: met`);
      assert.ok(figure.goal.length > 0, `${key}: the goal`);
      if (key === "churn.children_left") {
        assert.ok(figure.ours >= 0 && figure.baseline > 0, `${key}: children started, none or some left`);
      } else if (!key.startsWith("cpu.")) {
        // CPU time is read in 10 ms ticks: a quick run may see 0.
        assert.ok(figure.ours > 0 && figure.baseline > 0, `${key}: positive (${figure.ours}, ${figure.baseline})`);
      }
    }
    for (const part of ["ready", "turns", "scale", "churn", "filesystem", "history"])
      assert.ok(results.raw[part], `raw numbers of ${part}`);

    assert.deepEqual(readdirSync(work), [], "every temp folder of the bench is removed");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
