// deploy/grafana-dashboard.json against the metrics registry: every metric a panel queries is one
// the server exports (a renamed metric would leave an empty panel), and every metric has a panel.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { Metrics } from "../../lib/metrics/metrics.ts";
import { ROOT } from "../helpers/harness.ts";

interface Panel {
  title: string;
  targets?: { expr?: string }[];
}

const dashboard = JSON.parse(readFileSync(path.join(ROOT, "deploy/grafana-dashboard.json"), "utf8")) as {
  panels: Panel[];
  templating: { list: { query?: unknown; definition?: string }[] };
};

/** Metric names (as exposed: counters with _total, histograms with their series) in the registry. */
async function exportedSeries(): Promise<{ series: Set<string>; metrics: Set<string> }> {
  const metrics = new Metrics({
    liveSessions: () => 0,
    storedSessions: () => Promise.resolve(0),
    openSockets: () => 0,
    mcpServerStates: () => [],
  });
  const series = new Set<string>();
  const names = new Set<string>();
  for (const line of (await metrics.scrape()).split("\n")) {
    const found = /^# TYPE (\S+) (\S+)/.exec(line);
    if (!found?.[1]) continue;
    names.add(found[1]);
    series.add(found[1]);
    if (found[2] === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) series.add(`${found[1]}${suffix}`);
  }
  return { series, metrics: names };
}

function queried(): Map<string, string> {
  const used = new Map<string, string>();
  const texts: [string, string][] = [];
  for (const panel of dashboard.panels) for (const target of panel.targets ?? []) if (target.expr) texts.push([panel.title, target.expr]);
  for (const variable of dashboard.templating.list) if (variable.definition) texts.push(["(variable)", variable.definition]);
  for (const [where, text] of texts) for (const [name] of text.matchAll(/\bmcp_agent_\w+/g)) used.set(name, where);
  return used;
}

test("the dashboard queries metrics (the walk reads it)", () => {
  assert.ok(dashboard.panels.length >= 8);
  assert.ok(queried().size >= 8);
});

test("every metric the dashboard queries exists in the registry", async () => {
  const { series } = await exportedSeries();
  const missing = [...queried()].filter(([name]) => !series.has(name)).map(([name, panel]) => `${name} (panel "${panel}")`);
  assert.deepEqual(missing, []);
});

test("every metric in the registry has a panel", async () => {
  const { metrics } = await exportedSeries();
  const used = new Set([...queried().keys()].map((name) => name.replace(/_(bucket|sum|count)$/, "")));
  assert.deepEqual(
    [...metrics].filter((name) => !used.has(name)),
    [],
  );
});
