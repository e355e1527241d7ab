// History: opening a long conversation. One user holds a conversation of `turns` turns (each a
// tool call and an answer, made through the server like any other), another a conversation of
// one turn. Measured for both, median of `repeats`: the `history` frame (send → frame, on a
// connected socket) and the page's render in chromium (navigation → the newest message shown).
import { round2, startContenders, stopContenders } from "../contenders.ts";
import { BenchClient, median } from "../load.ts";
import type { BenchModel } from "../model.ts";
import type { Settings } from "../options.ts";
import type { Figure } from "../report.ts";
import { benchConfig, echoEntry } from "../targets.ts";
import type { Browser } from "playwright-core";
import { CHROMIUM, launchChromium } from "../../tests/helpers/browser.ts";

export const OPEN_GOAL_MS = 1000;
const LONG_USER = "history-long";
const SHORT_USER = "history-short";
const marker = (turn: number) => `Message number ${turn} of this conversation`;

interface Opened {
  frame_ms: number[];
  frame_bytes: number;
  frame_items: number;
  total_items: number;
  render_ms: number[];
}

async function build(url: string, userId: string, turns: number, say: (text: string) => void): Promise<void> {
  const client = await BenchClient.connect(url, userId);
  try {
    const started = performance.now();
    for (let turn = 1; turn <= turns; turn++) {
      await client.turn(marker(turn));
      if (turn % 250 === 0) say(`history: ${turn} of ${turns} turns made`);
    }
    say(`history: a ${turns}-turn conversation made in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    client.terminate();
  }
}

async function openFrames(
  url: string,
  userId: string,
  repeats: number,
): Promise<Pick<Opened, "frame_ms" | "frame_bytes" | "frame_items" | "total_items">> {
  const client = await BenchClient.connect(url, userId);
  try {
    const times: number[] = [];
    let bytes = 0;
    let items = 0;
    let total = 0;
    // One unmeasured: the first read of a session after its turns is not what a reopening costs.
    for (let n = -1; n < repeats; n++) {
      const { frame, ms, bytes: size } = await client.request({ type: "history" });
      if (frame.type !== "history" || !Array.isArray(frame.items))
        throw new Error(`history: expected a history frame, got ${JSON.stringify(frame).slice(0, 300)}`);
      if (n >= 0) times.push(ms);
      bytes = size;
      items = frame.items.length;
      total = typeof frame.total === "number" ? frame.total : items;
    }
    return { frame_ms: times.map(round2), frame_bytes: bytes, frame_items: items, total_items: total };
  } finally {
    client.terminate();
  }
}

/** Navigation start → the newest user message in the page's text, in a fresh browser context each time. */
async function renders(browser: Browser, httpUrl: string, userId: string, newest: string, repeats: number): Promise<number[]> {
  const times: number[] = [];
  for (let n = -1; n < repeats; n++) {
    const context = await browser.newContext();
    try {
      await context.addInitScript((id) => localStorage.setItem("chat.user_id", id), userId);
      const page = await context.newPage();
      const started = performance.now();
      await page.goto(httpUrl);
      await page.waitForFunction((text) => document.body.innerText.includes(text), newest, { timeout: 60_000 });
      if (n >= 0) times.push(round2(performance.now() - started));
    } finally {
      await context.close();
    }
  }
  return times;
}

export async function runHistory(
  model: BenchModel,
  settings: Settings,
  say: (text: string) => void,
): Promise<{ figures: Figure[]; raw: Record<string, unknown> }> {
  const { turns, repeats } = settings.history;
  const [contender] = await startContenders("history", [
    {
      name: "ours",
      kind: "ours",
      label: "ours (a long conversation)",
      config: benchConfig({
        modelUrl: model.baseUrl,
        servers: { test: echoEntry() },
        store: "sqlite",
        log: "file",
        // The whole conversation in memory and in the store: the page opens its newest page of it.
        session: { max_history_messages: Math.max(200, turns * 4 + 10) },
        limits: { history_requests_per_minute: 10_000, history_burst: 10_000 },
      }),
    },
  ]);
  if (!contender) throw new Error("history: no server");
  try {
    model.setLatency(0);
    await build(contender.target.wsUrl, LONG_USER, turns, say);
    await build(contender.target.wsUrl, SHORT_USER, 1, say);
    model.assertToolsOk("history: building the conversations");
    const long: Opened = { ...(await openFrames(contender.target.wsUrl, LONG_USER, repeats)), render_ms: [] };
    const short: Opened = { ...(await openFrames(contender.target.wsUrl, SHORT_USER, repeats)), render_ms: [] };
    if (CHROMIUM) {
      const browser = await launchChromium();
      try {
        long.render_ms = await renders(browser, contender.target.url, LONG_USER, marker(turns), repeats);
        short.render_ms = await renders(browser, contender.target.url, SHORT_USER, marker(1), repeats);
      } finally {
        await browser.close();
      }
    } else {
      say("history: chromium not found (CHROMIUM_PATH, or apt-get install chromium): the page's render is not measured");
    }
    const figures: Figure[] = [];
    const frameMs = median(long.frame_ms);
    const shortFrameMs = median(short.frame_ms);
    figures.push({
      key: "history.frame",
      label: `history: the \`history\` frame of a ${turns}-turn conversation (vs a 1-turn one), median of ${repeats}`,
      unit: "ms",
      ours: frameMs,
      baseline: shortFrameMs,
      ratio: shortFrameMs > 0 ? frameMs / shortFrameMs : null,
      goal: `< ${OPEN_GOAL_MS} ms`,
      met: frameMs < OPEN_GOAL_MS,
      oursText: `${frameMs.toFixed(1)} ms (${long.frame_items} of ${long.total_items} items, ${(long.frame_bytes / 1024).toFixed(0)} KiB)`,
      baselineText: `${shortFrameMs.toFixed(1)} ms (${short.frame_items} items)`,
    });
    if (CHROMIUM) {
      const renderMs = median(long.render_ms);
      const shortRenderMs = median(short.render_ms);
      figures.push({
        key: "history.render",
        label: `history: the page opens a ${turns}-turn conversation in chromium, to its newest message shown (vs a 1-turn one), median of ${repeats}`,
        unit: "ms",
        ours: renderMs,
        baseline: shortRenderMs,
        ratio: shortRenderMs > 0 ? renderMs / shortRenderMs : null,
        goal: `< ${OPEN_GOAL_MS} ms`,
        met: renderMs < OPEN_GOAL_MS,
      });
    }
    say(
      `history: frame ${frameMs.toFixed(1)} ms (${long.frame_items} items)${CHROMIUM ? `, page ${median(long.render_ms).toFixed(0)} ms` : ""} for ${turns} turns`,
    );
    return { figures, raw: { turns, repeats, long, short } };
  } finally {
    await stopContenders([contender]);
  }
}
