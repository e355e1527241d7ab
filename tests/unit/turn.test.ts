// One running turn (lib/session/turn.ts) driven directly: the real loop (agent.ts) against the
// scripted model server, the real store, approval desk, usage meter and metrics; fakes only of
// what is outside — the sockets (peers that record their frames) and the toolbox (the MCP servers).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { runTurn } from "../../agent.ts";
import { agentSettingsFrom } from "../../lib/agent/settings.ts";
import type { AgentSettings, ToolCallOptions, ToolOutcome, ToolRoute } from "../../lib/agent/types.ts";
import { parseConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { Metrics } from "../../lib/metrics/metrics.ts";
import { buildToolCatalog } from "../../lib/mcp/tools.ts";
import type { ServerFrame } from "../../lib/protocol.ts";
import { Redactor } from "../../lib/secrets/redactor.ts";
import { ApprovalDesk, ApprovalPolicy } from "../../lib/session/approvals.ts";
import { LocalCoordinator, type TurnLease } from "../../lib/session/coordinator.ts";
import { UserSockets, type Peer } from "../../lib/session/fanout.ts";
import { Turn, type TurnToolbox } from "../../lib/session/turn.ts";
import { UsageMeter } from "../../lib/session/usage-meter.ts";
import type { HistoryEntry } from "../../lib/store/history.ts";
import { MemoryStore } from "../../lib/store/store.ts";
import { mcpServerDefaults } from "../../lib/config.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";

const SECRET = "sk-live-turn-secret-0123456789";
let model: ModelServer;
before(async () => {
  model = await startModelServer({
    responder: (request) => toolDirective(request) ?? { content: `the key is ${SECRET}, do not tell`, chunkChars: 3 },
  });
});
after(() => model.close());

/** A socket of the user, as the session sees one: it keeps what it was sent. */
class FakePeer implements Peer {
  static #next = 1;
  readonly id = FakePeer.#next++;
  /** As the wire carries them: JSON. */
  readonly frames: Record<string, unknown>[] = [];
  constructor(readonly streaming: boolean) {}
  send(frame: ServerFrame): void {
    this.frames.push(JSON.parse(JSON.stringify(frame)) as Record<string, unknown>);
  }
  types(): string[] {
    return this.frames.map((frame) => String(frame.type ?? "seed"));
  }
}

/** MCP servers as the turn sees them: one server "box" with an echo tool, a slow tool and a write tool. */
class FakeToolbox implements TurnToolbox {
  readyCalls = 0;
  readonly calls: { route: ToolRoute; args: Record<string, unknown> }[] = [];
  #catalog = buildToolCatalog([
    {
      server: "box",
      tools: ["echo", "slow", "write"].map((name) => ({ name, inputSchema: { type: "object" as const, properties: {} } })),
    },
  ]);
  ready(): Promise<void> {
    this.readyCalls++;
    return Promise.resolve();
  }
  catalog() {
    return this.#catalog;
  }
  async callTool(route: ToolRoute, args: Record<string, unknown>, options: ToolCallOptions = {}): Promise<ToolOutcome> {
    this.calls.push({ route, args });
    if (route.tool === "slow") {
      for (let step = 1; step <= 3; step++) options.onProgress?.({ progress: step, total: 3 });
      // Until the turn is stopped, as a real server's call ends on MCP cancellation.
      await new Promise((resolve) => options.signal?.addEventListener("abort", resolve, { once: true }));
      return { ok: false, text: "cancelled" };
    }
    return { ok: true, text: `${route.tool}: ${JSON.stringify(args)}` };
  }
}

function agentSettings(): AgentSettings {
  const text = stringify({ openai: { base_url: model.baseUrl, default_model: "test-model", max_retries: 0, api_key: "sk-test-turn" } });
  return agentSettingsFrom(parseConfig({ file: "mcp_agent.config.yaml", text }, undefined, {}, "/cfg"), log);
}

const log = createLogger({ level: "error", console: false, secrets: [] });

/** A user's turn with everything it needs, as session.ts builds it. */
function setup(options: { maxTurnMs?: number; lease?: TurnLease; requireApproval?: string[] } = {}) {
  const store = new MemoryStore();
  const metrics = new Metrics({
    liveSessions: () => 1,
    storedSessions: () => Promise.resolve(1),
    openSockets: () => 2,
    mcpServerStates: () => [],
  });
  const redactor = new Redactor([SECRET]);
  const sockets = new UserSockets("ada", new LocalCoordinator());
  const tab = new FakePeer(true);
  const seed = new FakePeer(false);
  sockets.add(tab);
  sockets.add(seed);
  const approvals = new ApprovalDesk({
    timeoutMs: 30_000,
    log,
    logFields: () => ({}),
    canAsk: () => sockets.anyStreaming,
    broadcast: (frame) => sockets.turnFrame(frame),
  });
  const kept: HistoryEntry[][] = [];
  const agent = agentSettings();
  const toolbox = new FakeToolbox();
  const make = (text: string, asker: Peer = seed) =>
    new Turn(
      { turnId: `turn-${Math.random().toString(36).slice(2)}`, peer: asker, text },
      {
        userId: "ada",
        sessionId: "s-1",
        sockets,
        lease: options.lease ?? {
          fence: undefined,
          historyStale: false,
          lost: new AbortController().signal,
          release: () => Promise.resolve(),
        },
        store,
        meter: new UsageMeter({ userId: "ada", store, metrics, tokensPerDay: undefined, log, redactor }),
        metrics,
        log,
        redactor,
        approvals,
        approvalPolicy: new ApprovalPolicy({ box: { ...mcpServerDefaults(), require_approval: options.requireApproval ?? "never" } }),
        maxTurnMs: options.maxTurnMs ?? 60_000,
        changesWorkspace: (_server, tool) => tool === "write",
        sessionRecord: () => ({ userId: "ada", sessionId: "s-1", createdAt: 1, lastActivity: 1, messageCount: 1 }),
        keep: (entries) => kept.push(entries),
      },
    );
  const run = (turn: Turn, text: string) => turn.run(toolbox, (box, loopOptions) => runTurn(agent, box, [], text, loopOptions));
  return { store, metrics, sockets, tab, seed, approvals, kept, toolbox, make, run };
}

/** Resolves once the streaming tab was sent a frame of this type. */
async function frameOf(peer: FakePeer, type: string): Promise<Record<string, unknown>> {
  for (;;) {
    const found = peer.frames.find((frame) => frame.type === type);
    if (found) return found;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("Turn", () => {
  test("a turn with a tool call: its frames in order, the seed asker's one answer, the store, usage, metrics, files_changed", async () => {
    const { tab, seed, store, metrics, kept, toolbox, make, run } = setup();
    const text = 'CALL box_write {"path":"a.txt"}';
    const turn = make(text);
    const status = await run(turn, text);
    assert.equal(status, "ok");
    assert.equal(toolbox.readyCalls, 1, "the tools were made ready before the loop");
    assert.deepEqual(toolbox.calls, [{ route: { server: "box", tool: "write" }, args: { path: "a.txt" } }]);
    // Consecutive deltas as one: how many pieces the text came in is the model's business.
    assert.deepEqual(
      tab.types().filter((type, index, types) => type !== "delta" || types[index - 1] !== "delta"),
      ["turn_start", "tool_start", "tool_end", "files_changed", "delta", "answer"],
    );
    const answer = tab.frames.at(-1) ?? {};
    assert.equal(answer.turn_id, turn.turnId);
    assert.equal(answer.message, 'RESULT write: {"path":"a.txt"}');
    const usage = answer.usage as Record<string, number>;
    assert.equal(usage.model_calls, 2);
    assert.ok(usage.total_tokens > 0);
    // The seed asker gets exactly one frame: the seed answer.
    assert.deepEqual(seed.frames, [{ message: 'RESULT write: {"path":"a.txt"}', user_id: "ada", session_id: "s-1" }]);
    // The store has the turn (user message, the step, the answer) and its usage; the session was handed the entries.
    const stored = await store.usage("ada", new Date().toISOString().slice(0, 10));
    assert.equal(stored.total.total_tokens, usage.total_tokens);
    assert.deepEqual(
      kept[0]?.map((entry) => entry.message.role),
      ["user", "assistant", "tool", "assistant"],
    );
    assert.deepEqual(kept[0]?.[2]?.tool, {
      name: "box_write",
      server: "box",
      tool: "write",
      ok: true,
      durationMs: kept[0]?.[2]?.tool?.durationMs,
    });
    const scraped = await metrics.scrape();
    assert.match(scraped, /mcp_agent_turns_total\{outcome="ok"\} 1/);
    assert.match(scraped, /mcp_agent_tool_calls_total\{server="box",tool="write",outcome="ok"\} 1/);
    assert.match(scraped, new RegExp(`mcp_agent_tokens_total\\{kind="prompt"\\} ${usage.prompt_tokens}\\b`));
  });

  // Whole frames are redacted where they are sent (lib/socket); deltas here, where a secret can be split.
  test("a secret the model writes is redacted from the deltas, even split across them", async () => {
    const { tab, make, run } = setup();
    await run(make("tell me"), "tell me");
    const streamed = tab.frames.filter((frame) => frame.type === "delta").map((frame) => String(frame.text));
    assert.ok(streamed.length > 0);
    assert.ok(!streamed.join("").includes(SECRET), streamed.join(""));
    assert.match(streamed.join(""), /^the key is .+, do not tell$/);
  });

  test("cancel stops the turn in a tool call: cancelled frame, the seed asker's error, progress throttled", async () => {
    const { tab, seed, make, run } = setup();
    const turn = make("CALL box_slow {}");
    const running = run(turn, "CALL box_slow {}");
    await frameOf(tab, "tool_start");
    assert.equal(turn.cancel(), true);
    assert.equal(turn.cancel(), false, "a second cancel finds it already stopping");
    assert.equal(await running, "cancelled");
    assert.equal(tab.types().at(-1), "cancelled");
    // Three progress reports in a row: at most one per interval reaches the sockets.
    assert.equal(tab.types().filter((type) => type === "tool_progress").length, 1);
    assert.deepEqual(seed.frames, [{ error: "An error occurred: the turn was cancelled", code: "turn_cancelled" }]);
  });

  test("interrupt (the session closing) ends the turn as interrupted", async () => {
    const { tab, make, run } = setup();
    const turn = make("CALL box_slow {}");
    const running = run(turn, "CALL box_slow {}");
    await frameOf(tab, "tool_start");
    turn.interrupt();
    assert.equal(await running, "interrupted");
    assert.equal(tab.types().at(-1), "cancelled");
  });

  test("the deadline (agent.max_turn_seconds) stops a turn with an error naming it", async () => {
    const { tab, seed, make, run } = setup({ maxTurnMs: 300 });
    const status = await run(make("CALL box_slow {}"), "CALL box_slow {}");
    assert.equal(status, "error");
    const error = tab.frames.at(-1) ?? {};
    assert.equal(error.type, "error");
    assert.equal(error.error, "An error occurred: the turn was stopped: it ran longer than 0.3 s (agent.max_turn_seconds)");
    assert.equal(error.code, "turn_timeout");
    assert.deepEqual(seed.frames, [
      { error: "An error occurred: the turn was stopped: it ran longer than 0.3 s (agent.max_turn_seconds)", code: "turn_timeout" },
    ]);
  });

  test("a lost lease stops the turn with an error saying why", async () => {
    const lost = new AbortController();
    const lease: TurnLease = { fence: undefined, historyStale: false, lost: lost.signal, release: () => Promise.resolve() };
    const { tab, make, run } = setup({ lease });
    const running = run(make("CALL box_slow {}"), "CALL box_slow {}");
    await frameOf(tab, "tool_start");
    lost.abort(new Error("the turn lease was taken over by another instance"));
    assert.equal(await running, "error");
    assert.equal(tab.frames.at(-1)?.error, "An error occurred: the turn was stopped: the turn lease was taken over by another instance");
    assert.equal(tab.frames.at(-1)?.code, "server_unavailable");
  });

  test("a call the policy covers waits for a person: the approval request goes to the tabs, the answer lets it run", async () => {
    const { tab, approvals, toolbox, make, run } = setup({ requireApproval: ["echo"] });
    const text = 'CALL box_echo {"text":"hi"}';
    const running = run(make(text, tab), text);
    const request = await frameOf(tab, "approval_request");
    assert.equal(toolbox.calls.length, 0, "not run before the answer");
    assert.equal(approvals.answer(String(request.call_id), true, undefined, false, tab.id), true);
    assert.equal(await running, "ok");
    assert.equal(toolbox.calls.length, 1);
    assert.ok(tab.types().includes("approval_resolved"));
    // What was not answered when the turn ended is settled with it.
    assert.equal(approvals.answer(String(request.call_id), true, undefined, false, tab.id), false);
  });

  test("a sampling request's model call made while the turn runs counts in the turn's usage", async () => {
    const { tab, store, make, run } = setup();
    const turn = make("CALL box_slow {}");
    const running = run(turn, "CALL box_slow {}");
    await frameOf(tab, "tool_start");
    const sampled = { prompt_tokens: 100, completion_tokens: 20, cached_tokens: 0, total_tokens: 120, model_calls: 1 };
    await turn.onModelCall({ usage: sampled, durationMs: 5, ok: true });
    turn.cancel();
    await running;
    const day = new Date().toISOString().slice(0, 10);
    const { total } = await store.usage("ada", day);
    assert.equal(total.model_calls, 2, "the loop's call and the sampling's");
    assert.ok(total.total_tokens > 120);
  });
});
