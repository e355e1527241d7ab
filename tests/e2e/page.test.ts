// The chat page (page/) in a real browser (Debian's chromium, driven by playwright-core),
// against the real server and the scripted model server.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { SignJWT } from "jose";
import { type Browser, type Locator, type Page } from "playwright-core";
import { chromiumSkip, launchChromium } from "../helpers/browser.ts";
import { baseConfig, connectUser, startServer, testServerEntry, type RunningServer } from "../helpers/harness.ts";
import {
  afterTool,
  lastUserText,
  startModelServer,
  type ChatRequest,
  type ModelServer,
  type ScriptedReply,
} from "../helpers/model-server.ts";

const skip = chromiumSkip;
const SECRETS = { openai: { api_key: "sk-test-page" } };

const STREAMED = `Here is ${"a fairly long streamed answer ".repeat(8)}\n\n\`\`\`js\nconst answer = 42;\n\`\`\`\n\nEND-OF-STREAM`;
const XSS_TEXT =
  'Look: <img src=x onerror="window.__xss=1"> and <script>window.__xss=2</script> [link](javascript:window.__xss=5) **bold**';
const XSS_TOOL = '<img src=x onerror="window.__xss=3"><script>window.__xss=4</script>';

/** The last tool result the model was given. */
function toolResult(request: ChatRequest): string {
  return String(request.messages.at(-1)?.content ?? "");
}

/** How many tool results the model has been given in this turn. */
function toolResults(request: ChatRequest): number {
  let count = 0;
  for (let i = request.messages.length - 1; i >= 0 && request.messages[i]?.role !== "user"; i--) {
    if (request.messages[i]?.role === "tool") count++;
  }
  return count;
}

/** The model's script, by the user's message. */
function reply(request: ChatRequest): ScriptedReply {
  const text = lastUserText(request);
  const tool = afterTool(request);
  // test_echo needs approval on the `approving` server: the model repeats what the tool said.
  if (text.startsWith("echo please")) {
    return tool
      ? { content: `The tool said: ${toolResult(request)}` }
      : { toolCalls: [{ name: "test_echo", arguments: { text: "hello" } }] };
  }
  switch (text) {
    case "echo twice":
      return toolResults(request) >= 2
        ? { content: `Twice: ${toolResult(request)}` }
        : { toolCalls: [{ name: "test_echo", arguments: { text: `call ${toolResults(request) + 1}` } }] };
    case "echo slowly":
      return tool
        ? {
            content: `Result: ${toolResult(request)}. ${"More words follow here. ".repeat(12)}END-OF-APPROVAL`,
            chunkChars: 4,
            chunkDelayMs: 10,
          }
        : { content: "Let me check that for you.", toolCalls: [{ name: "test_echo", arguments: { text: "hello" } }] };
    case "stream please":
      return { content: STREAMED, chunkChars: 4, chunkDelayMs: 15 };
    case "use the tool":
      return tool ? { content: "The tool **worked**." } : { toolCalls: [{ name: "test_slow", arguments: { ms: 600 } }] };
    case "wait forever":
      return tool ? { content: "unreachable" } : { toolCalls: [{ name: "test_slow", arguments: { ms: 60000 } }] };
    case "xss":
      return tool ? { content: XSS_TEXT } : { toolCalls: [{ name: "test_echo", arguments: { text: XSS_TOOL } }] };
    default:
      return { content: `echo: ${text}` };
  }
}

let browser: Browser;
let model: ModelServer;
/** With the test MCP server (one child process per user); `plain` has none, so it starts faster. */
let running: RunningServer;
let plain: RunningServer;
/** The test MCP server again, its `echo` tool waiting for a person's approval. */
let approving: RunningServer;
const APPROVING = { test: { ...testServerEntry, require_approval: ["echo"] } };

before(async () => {
  if (skip) return;
  model = await startModelServer({ responder: reply });
  running = await startServer({ config: baseConfig(model.baseUrl, { test: testServerEntry }), secrets: SECRETS });
  plain = await startServer({ config: baseConfig(model.baseUrl), secrets: SECRETS });
  approving = await startServer({
    config: baseConfig(model.baseUrl, APPROVING, { agent: { approval_timeout_seconds: 30 } }),
    secrets: SECRETS,
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await running?.close();
  await plain?.close();
  await approving?.close();
  await model?.close();
});

/**
 * A fresh browser context (its own localStorage) with the page loaded and connected. `userId`
 * is put in localStorage before the page's script runs, unless the page already stored one.
 */
async function openPage(
  t: TestContext,
  options: { userId?: string; url?: string; viewport?: { width: number; height: number }; sent?: Record<string, unknown>[] } = {},
): Promise<Page> {
  const context = await browser.newContext(options.viewport ? { viewport: options.viewport } : {});
  context.setDefaultTimeout(10000);
  t.after(() => context.close());
  if (options.userId) {
    await context.addInitScript((id) => {
      if (!localStorage.getItem("chat.user_id")) localStorage.setItem("chat.user_id", id);
    }, options.userId);
  }
  const page = await context.newPage();
  const { sent } = options;
  if (sent)
    page.on("websocket", (socket) =>
      socket.on("framesent", (frame) => sent.push(JSON.parse(String(frame.payload)) as Record<string, unknown>)),
    );
  checkErrors(t, page);
  await page.goto(options.url ?? plain.url);
  await connected(page);
  return page;
}

/** Fails the test if the page throws or breaks its Content-Security-Policy. */
function checkErrors(t: TestContext, page: Page): void {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  // The page's own CSS and script must pass its Content-Security-Policy. (Inline event handlers
  // in model output are reported too, when DOMPurify parses them in its inert document: not ours.)
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy/i.test(text) && !/inline event handler/.test(text)) errors.push(text);
  });
  t.after(() => assert.deepEqual(errors, [], "no script error or policy violation in the page"));
}

/** Another tab of the same browser context (so the same stored user id), loaded and connected. */
async function secondTab(t: TestContext, page: Page, url: string): Promise<Page> {
  const other = await page.context().newPage();
  checkErrors(t, other);
  await other.goto(url);
  await connected(other);
  return other;
}

/** The element that has the keyboard focus, described by its id or its text. */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const active = document.activeElement;
    return active?.id ? `#${active.id}` : (active?.textContent ?? "");
  });
}

const connected = (page: Page) => page.waitForSelector('#state[data-state="connected"]');

/** Types a message into the box and sends it with Enter. */
async function say(page: Page, text: string): Promise<void> {
  await page.focus("#input");
  await page.keyboard.insertText(text);
  await page.keyboard.press("Enter");
}

/** The assistant's text in a turn, without the newline Markdown ends its blocks with. */
async function answerOf(article: Locator): Promise<string> {
  return (await article.locator(".md").allTextContents()).join("").trim();
}

/** Waits for the turn whose user message is `input` to reach `status`; returns its article. */
async function turnWith(page: Page, input: string, status = "ok") {
  const article = page.locator("article.turn", { has: page.locator(".user .bubble", { hasText: input }) }).last();
  await article.and(page.locator(`[data-status="${status}"]`)).waitFor();
  return article;
}

test("connects on load to this page's host and port, shows the state, remembers user id and token", { skip }, async (t) => {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const sockets: string[] = [];
  page.on("websocket", (socket) => sockets.push(socket.url()));
  await page.goto(plain.url);
  await connected(page);
  assert.equal(await page.inputValue("#user"), "test_user");
  assert.match((await page.textContent("#state")) ?? "", /Connected as test_user/);
  // The page is at 127.0.0.1 on a random port: the socket goes there, not to localhost:8000.
  const { host } = new URL(plain.url);
  assert.equal(sockets[0], `ws://${host}/ws/test_user?stream=1`);

  await page.click("#disconnect");
  await page.waitForSelector('#state[data-state="disconnected"]');
  await page.fill("#user", "page.remember-me");
  await page.fill("#token", "secret-token");
  await page.press("#user", "Enter");
  await connected(page);
  assert.match((await page.textContent("#state")) ?? "", /Connected as page\.remember-me/);
  assert.equal(sockets.at(-1), `ws://${host}/ws/page.remember-me?stream=1&token=secret-token`);

  await page.reload();
  await connected(page);
  assert.equal(await page.inputValue("#user"), "page.remember-me");
  assert.equal(await page.inputValue("#token"), "secret-token");
  assert.equal(await page.evaluate(() => localStorage.getItem("chat.user_id")), "page.remember-me");

  await page.fill("#user", "no spaces allowed");
  await page.click("#connect");
  await page.waitForSelector('#state[data-state="error"]');
});

test("Enter sends; the answer streams in progressively and renders Markdown with code blocks", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_stream" });
  await say(page, "stream please");
  assert.equal(await page.inputValue("#input"), "", "the box is cleared after sending");
  // Part of the answer is on screen before the end of it has arrived.
  await page.waitForFunction(
    () => {
      const text = document.querySelector("#current .md")?.textContent ?? "";
      return text.length > 10 && !text.includes("END-OF-STREAM");
    },
    null,
    { polling: "raf" },
  );
  const article = await turnWith(page, "stream please");
  assert.match(await answerOf(article), /END-OF-STREAM/);
  assert.equal(await article.locator(".md pre code").textContent(), "const answer = 42;\n");
  assert.equal(await page.getAttribute("#stop", "disabled"), "", "no turn is running: stop is disabled");
});

test("Shift+Enter adds a line instead of sending", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_newline" });
  await page.focus("#input");
  await page.keyboard.type("line one");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("line two");
  assert.equal(await page.inputValue("#input"), "line one\nline two");
  assert.equal(await page.locator("article.turn").count(), 0, "nothing was sent");
  await page.keyboard.press("Enter");
  const article = await turnWith(page, "line one");
  assert.equal(await article.locator(".user .bubble").textContent(), "line one\nline two");
  assert.equal(await answerOf(article), "echo: line one\nline two");
});

test("a tool call shows as a card with tool, arguments, result and time, collapsed once done", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_tool", url: running.url });
  await say(page, "use the tool");
  const card = page.locator("details.tool");
  await page.locator("details.tool.running[open]").waitFor();
  assert.equal(await card.locator(".tname").textContent(), "slow");
  assert.equal(await card.locator(".tserver").textContent(), "test");
  assert.deepEqual(JSON.parse((await card.locator("pre.targs").textContent()) ?? ""), { ms: 600 });
  await page.locator("details.tool.ok:not([open])").waitFor();
  assert.equal(await card.locator("pre.tresult").textContent(), "slept 600");
  assert.match((await card.locator(".tstatus").textContent()) ?? "", /^done · \d+ ms$/);
  const article = await turnWith(page, "use the tool");
  assert.equal(await article.locator(".md strong").textContent(), "worked");
  // The card opens from the keyboard.
  await card.locator("summary").focus();
  await page.keyboard.press("Enter");
  assert.equal(await card.getAttribute("open"), "");
});

test("stop cancels the running turn; messages sent meanwhile queue visibly, in every tab, and run after it", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_stop", url: running.url });
  await say(page, "wait forever");
  await page.locator("details.tool.running").waitFor();
  const other = await secondTab(t, page, running.url);
  await other.locator("details.tool.running").waitFor();
  // The box stays usable while the turn runs: this one waits in the server's queue.
  await say(page, "next in line");
  const queued = page.locator("article.turn", { hasText: "next in line" });
  assert.equal(await queued.getAttribute("data-status"), "queued");
  assert.equal(await queued.locator(".tag").textContent(), "queued");
  // The other tab learns of it from the server's `queued` frame, before it starts.
  const mirrored = await turnWith(other, "next in line", "queued");
  assert.equal(await mirrored.locator(".tag").textContent(), "queued");
  assert.equal(await other.locator("#current article.turn").count(), 2);
  await page.click("#stop:not([disabled])");
  const stopped = await turnWith(page, "wait forever", "cancelled");
  assert.equal(await stopped.locator(".tag").textContent(), "cancelled");
  const next = await turnWith(page, "next in line");
  assert.equal(await answerOf(next), "echo: next in line");
  assert.equal(await next.locator(".tag").textContent(), "");
  assert.equal(await answerOf(await turnWith(other, "next in line")), "echo: next in line");
  assert.equal(await page.locator("#current article.turn").count(), 2, "each message shows once");
});

test("model and tool output cannot run script in the page", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_xss", url: running.url });
  await say(page, "xss");
  const article = await turnWith(page, "xss");
  await page.locator("details.tool.ok").waitFor();
  // Let every image that made it into the page finish loading (or failing) first.
  await page.waitForFunction(() => [...document.querySelectorAll("img")].every((img) => img.complete));
  assert.equal(await page.evaluate(() => (window as unknown as { __xss?: unknown }).__xss), undefined);
  assert.equal(await page.locator("#log img[onerror], #log script, #log [onclick]").count(), 0);
  assert.equal(await page.locator('#log a[href^="javascript:"]').count(), 0);
  assert.equal(await article.locator(".md strong").textContent(), "bold");
  // The tool's output is shown as text, not as markup.
  assert.equal(await article.locator("pre.tresult").textContent(), `echo:${XSS_TOOL}`);
});

test("a reload replays the conversation from the server's history", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_history", url: running.url });
  await say(page, "remember this");
  await turnWith(page, "remember this");
  await say(page, "use the tool");
  await turnWith(page, "use the tool");
  await page.reload();
  await connected(page);
  const first = await turnWith(page, "remember this");
  assert.equal(await answerOf(first), "echo: remember this");
  const second = await turnWith(page, "use the tool");
  assert.equal(await second.locator("details.tool.ok .tname").textContent(), "slow");
  assert.equal(await second.locator("details.tool pre.tresult").textContent(), "slept 600");
  // The tool's time comes back with the history too.
  assert.match((await second.locator("details.tool .tstatus").textContent()) ?? "", /^done · \d+ ms$/);
  assert.equal(await page.locator(".divider").count(), 0, "same session: no divider");
});

test("a second tab sees turns started in the first, including one already running", { skip }, async (t) => {
  const first = await openPage(t, { userId: "page_tabs" });
  await say(first, "stream please");
  await first.waitForSelector("#current .md");
  // Opened mid-turn: it gets the turn so far, then the rest live.
  const second = await first.context().newPage();
  await second.goto(plain.url);
  await connected(second);
  const article = await turnWith(second, "stream please");
  assert.match(await answerOf(article), /^Here is a fairly long.*END-OF-STREAM$/s);
  await say(second, "from tab two");
  const mirrored = await turnWith(first, "from tab two");
  assert.equal(await answerOf(mirrored), "echo: from tab two");
});

test(
  "after a restart without persistence the page reconnects on the same port and keeps the old transcript, greyed",
  { skip },
  async (t) => {
    const config = baseConfig(model.baseUrl, {}, { session: { store: "memory" } });
    let server = await startServer({ config, secrets: SECRETS });
    t.after(() => server.close());
    const port = Number(new URL(server.url).port);
    const page = await openPage(t, { userId: "page_restart", url: server.url });
    await say(page, "before the restart");
    await turnWith(page, "before the restart");

    await server.close();
    await page.waitForSelector('#state[data-state="reconnecting"]');
    server = await startServer({ config, secrets: SECRETS, port });
    await connected(page);
    // The new server has a new, empty session: the old transcript stays, greyed, above a divider.
    await page.waitForSelector("#archive .divider");
    assert.equal(await page.textContent("#archive .divider"), "new session");
    assert.equal(await page.locator("#archive article.turn", { hasText: "before the restart" }).count(), 1);
    await say(page, "after the restart");
    const article = await turnWith(page, "after the restart");
    assert.equal(await answerOf(article), "echo: after the restart");
    assert.equal(await page.locator("#current article.turn").count(), 1);
  },
);

test("after a restart with the stored sessions the page shows the conversation from the store", { skip }, async (t) => {
  let server = await startServer({ config: baseConfig(model.baseUrl), secrets: SECRETS, keepDir: true });
  const { configDir } = server;
  t.after(async () => {
    await server.close();
    rmSync(configDir, { recursive: true, force: true });
  });
  const port = Number(new URL(server.url).port);
  const page = await openPage(t, { userId: "page_persist", url: server.url });
  await say(page, "kept across restarts");
  await turnWith(page, "kept across restarts");

  await server.close();
  await page.waitForSelector('#state[data-state="reconnecting"]');
  server = await startServer({ configDir, port });
  await connected(page);
  await say(page, "after the restart");
  await turnWith(page, "after the restart");
  const kept = await turnWith(page, "kept across restarts");
  assert.equal(await answerOf(kept), "echo: kept across restarts");
  assert.equal(await page.locator("#current article.turn").count(), 2);
  assert.equal(await page.locator(".divider").count(), 0);
});

test("with server.auth_token the page connects once the token is entered, and remembers it", { skip }, async (t) => {
  const server = await startServer({ config: baseConfig(model.baseUrl, {}, { server: { auth_token: "page-s3cret" } }), secrets: SECRETS });
  t.after(() => server.close());
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(server.url);
  // Refused without the token: the page keeps trying, with backoff, and says why.
  await page.waitForSelector('#state[data-state="reconnecting"]');
  await page.locator("#token-note", { hasText: "Token required" }).waitFor();
  assert.equal(await page.getAttribute("#token", "aria-invalid"), "true");
  await page.locator("#state", { hasText: "token required" }).waitFor();
  await page.fill("#token", "not-the-token");
  await page.click("#connect");
  await page.locator("#token-note", { hasText: "Token rejected" }).waitFor();
  await page.locator("#state", { hasText: "token rejected" }).waitFor();
  await page.fill("#token", "page-s3cret");
  await page.click("#connect");
  await connected(page);
  assert.equal(await page.textContent("#token-note"), "");
  assert.equal(await page.getAttribute("#token", "aria-invalid"), null);
  await say(page, "with a token");
  await turnWith(page, "with a token");
  assert.equal(await page.evaluate(() => localStorage.getItem("chat.token")), "page-s3cret");
});

test(
  "with per-user tokens (server.auth.mode jwt) the page says when a token is for another user id, and connects with its own",
  { skip },
  async (t) => {
    const secret = "page-jwt-secret-that-is-long-enough-0123456789";
    const server = await startServer({
      config: baseConfig(model.baseUrl, {}, { server: { auth: { mode: "jwt", jwt: { secret } } } }),
      secrets: SECRETS,
    });
    t.after(() => server.close());
    const sign = (sub: string) =>
      new SignJWT({ sub }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("10m").sign(new TextEncoder().encode(secret));
    const context = await browser.newContext();
    t.after(() => context.close());
    await context.addInitScript(() => localStorage.setItem("chat.user_id", "page_jwt"));
    const page = await context.newPage();
    await page.goto(server.url);
    await page.locator("#token-note", { hasText: "Token required" }).waitFor();
    await page.fill("#token", await sign("someone_else"));
    await page.click("#connect");
    await page.locator("#token-note", { hasText: "another user id" }).waitFor();
    await page.fill("#token", await sign("page_jwt"));
    await page.click("#connect");
    await connected(page);
    assert.equal(await page.textContent("#token-note"), "");
    await say(page, "with my own token");
    await turnWith(page, "with my own token");
  },
);

test("a reset from another client clears the conversation in the page", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_reset" });
  await say(page, "before the reset");
  await turnWith(page, "before the reset");
  const { client } = await connectUser(plain, "page_reset", "?stream=1");
  t.after(() => client.close());
  client.send({ type: "reset" });
  await page.locator("#current .notice", { hasText: "New chat started." }).waitFor();
  assert.equal(await page.locator("article.turn").count(), 0, "the old conversation is gone");
  assert.equal(await page.locator(".divider").count(), 0);
  await say(page, "after the reset");
  await turnWith(page, "after the reset");
  assert.equal(await page.locator("#current article.turn").count(), 1);
});

test(
  "New chat asks first, then clears the conversation in every tab under a new session id, and the files when asked",
  { skip },
  async (t) => {
    const user = "page_new_chat";
    const page = await openPage(t, { userId: user });
    await say(page, "before the new chat");
    await turnWith(page, "before the new chat");
    const sessionOf = async () =>
      (await (await fetch(`${plain.url}/sessions/${user}`)).json()) as { session_id: string; message_count: number };
    const before = await sessionOf();
    const file = path.join(plain.configDir, "workspace", user, "notes.txt");
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, "kept until asked");
    const other = await secondTab(t, page, plain.url);
    await turnWith(other, "before the new chat");

    // Escape backs out: nothing is sent, nothing changes.
    await page.click("#new-chat");
    await page.locator("#reset-dialog").waitFor();
    assert.equal(await focused(page), "#reset-cancel", "the safe choice has the focus");
    await page.keyboard.press("Escape");
    await page.locator("#reset-dialog").waitFor({ state: "hidden" });
    assert.equal(await page.locator("article.turn").count(), 1);

    await page.click("#new-chat");
    await page.check("#reset-files");
    await page.click("#reset-confirm");
    await page.locator("#current .notice", { hasText: "New chat started. Your files were deleted too." }).waitFor();
    assert.equal(await page.locator("article.turn").count(), 0, "the conversation is cleared");
    assert.equal(await page.locator(".divider").count(), 0, "not kept greyed: it was deleted on purpose");
    assert.equal(await focused(page), "#input");
    await other.locator("#current .notice", { hasText: "New chat started" }).waitFor();
    assert.equal(await other.locator("article.turn").count(), 0, "the other tab is cleared too");
    assert.equal(existsSync(file), false, "the workspace was emptied");
    const after = await sessionOf();
    assert.notEqual(after.session_id, before.session_id);

    // The new conversation goes on under the new session id, also after a reload.
    await say(page, "after the new chat");
    await turnWith(page, "after the new chat");
    await page.reload();
    await connected(page);
    await turnWith(page, "after the new chat");
    assert.equal(await page.locator("article.turn").count(), 1);
    assert.equal(await page.locator(".divider").count(), 0);
    const last = await sessionOf();
    assert.equal(last.session_id, after.session_id);
    assert.equal(last.message_count, 1);
  },
);

test("a message refused by the rate limit is marked not sent, matched by its client_id", { skip }, async (t) => {
  const server = await startServer({
    config: baseConfig(model.baseUrl, {}, { limits: { message_burst: 1, messages_per_minute: 1 } }),
    secrets: SECRETS,
  });
  t.after(() => server.close());
  const sent: Record<string, unknown>[] = [];
  const page = await openPage(t, { userId: "page_limited", url: server.url, sent });
  await say(page, "first allowed");
  const first = await turnWith(page, "first allowed");
  await say(page, "second refused");
  const refused = await turnWith(page, "second refused", "lost");
  assert.equal(await refused.locator(".tag").textContent(), "not sent");
  assert.match((await refused.locator(".error-line").textContent()) ?? "", /^Too many messages: the limit is 1 per minute/);
  assert.equal(await first.getAttribute("data-status"), "ok", "the earlier message is untouched");
  const chats = sent.filter((frame) => typeof frame.message === "string");
  assert.equal(chats.length, 2);
  assert.ok(
    chats.every((frame) => typeof frame.client_id === "string" && frame.client_id !== ""),
    "each message carries a client_id",
  );
  assert.notEqual(chats[0]?.client_id, chats[1]?.client_id);
});

test("a tool call that needs approval asks inside its card; denied from the keyboard, the model is told", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_deny", url: approving.url });
  await say(page, "echo please");
  // The focus moves to Approve, inside the card of that very call.
  const card = page.locator("details.tool");
  await card.locator(".approval button.approve:focus").waitFor();
  assert.equal(await card.count(), 1);
  assert.equal(await card.getAttribute("open"), "");
  assert.equal(await card.locator(".tname").textContent(), "echo");
  assert.deepEqual(JSON.parse((await card.locator("pre.targs").textContent()) ?? ""), { text: "hello" });
  assert.equal(await card.locator(".tstatus").textContent(), "waiting for approval");
  assert.match(
    (await card.locator(".approval .wait").first().textContent()) ?? "",
    /^Waits up to 30 s for an answer, then counts as denied\. \(\d+ s left\)$/,
  );
  assert.equal(await card.locator(".approval").getAttribute("role"), "group");
  await page.locator("#announce", { hasText: "Approval needed: test echo wants to run" }).waitFor({ state: "attached" });
  assert.equal(await page.getAttribute("#announce", "aria-live"), "assertive");

  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "Deny");
  await page.keyboard.press("Enter");
  const article = await turnWith(page, "echo please");
  assert.equal(await answerOf(article), "The tool said: Error: denied by the user: no reason given");
  assert.equal(await card.locator(".approval .outcome").textContent(), "Denied: no reason given");
  assert.equal(await card.locator(".tapproval").textContent(), "denied");
  assert.match((await card.locator(".tstatus").textContent()) ?? "", /^not run · /);
  assert.equal(await card.locator("pre.tresult").textContent(), "denied by the user: no reason given");
  assert.equal(await focused(page), "#input", "the focus goes back to the message box");
});

test("Approve runs the tool; a reason typed in another tab denies with it; both tabs show each outcome", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_approve", url: approving.url });
  const other = await secondTab(t, page, approving.url);
  await say(page, "echo please");
  await page.locator(".approval button.approve:focus").waitFor();
  await other.locator(".approval button.approve").waitFor();
  await page.click(".approval button.approve");
  const approved = await turnWith(page, "echo please");
  assert.equal(await answerOf(approved), "The tool said: echo:hello");
  assert.equal(await approved.locator(".approval .outcome").textContent(), "Approved");
  assert.equal(await approved.locator("details.tool.ok pre.tresult").textContent(), "echo:hello");
  const mirrored = await turnWith(other, "echo please");
  assert.equal(await mirrored.locator(".approval .outcome").textContent(), "Approved");

  await say(page, "echo please, again");
  await other.locator(".approval input.reason").fill("not today");
  await other.locator(".approval input.reason").press("Enter");
  const denied = await turnWith(page, "echo please, again");
  assert.equal(await answerOf(denied), "The tool said: Error: denied by the user: not today");
  assert.equal(await denied.locator(".approval .outcome").textContent(), "Denied: not today");
  assert.equal(await (await turnWith(other, "echo please, again")).locator(".approval .outcome").textContent(), "Denied: not today");
  assert.equal(await page.locator(".approval button").count(), 0, "no buttons left to press");
});

test("Always allow: the same tool runs again in the session without asking", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_always", url: approving.url });
  await say(page, "echo twice");
  await page.locator(".approval button.approve:focus").waitFor();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "Always allow");
  await page.keyboard.press("Enter");
  const article = await turnWith(page, "echo twice");
  assert.equal(await answerOf(article), "Twice: echo:call 2");
  const cards = article.locator("details.tool");
  assert.equal(await cards.count(), 2);
  assert.equal(await article.locator("details.tool.ok").count(), 2);
  assert.equal(await cards.nth(0).locator(".approval .outcome").textContent(), "Approved · always allowed for the rest of this session");
  assert.equal(await cards.nth(1).locator(".approval").count(), 0, "the second call was not asked about");
  assert.equal(await cards.nth(1).locator("pre.tresult").textContent(), "echo:call 2");
});

test("a page reloaded while a request waits shows the turn so far, can answer it, and streams the rest", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_resume", url: approving.url });
  await say(page, "echo slowly");
  await page.locator(".approval button.approve:focus").waitFor();
  // A tab opened meanwhile gets the running turn, request included.
  const other = await secondTab(t, page, approving.url);
  await other.locator(".approval button.approve").waitFor();
  // The request was asked before that tab connected: no countdown it cannot know.
  assert.equal(await other.locator(".approval .wait").first().textContent(), "Waits up to 30 s for an answer, then counts as denied.");

  await page.reload();
  await connected(page);
  const article = page.locator("article.turn", { hasText: "echo slowly" });
  await article.locator(".md", { hasText: "Let me check that for you." }).waitFor();
  assert.equal(await article.getAttribute("data-status"), "running");
  await page.locator(".approval button.approve:focus").waitFor();
  await page.keyboard.press("Enter");
  // The rest streams in: part of the answer shows before its end has arrived.
  await page.waitForFunction(
    () => {
      const text = document.querySelector("#current article .msg.assistant")?.textContent ?? "";
      return text.includes("Result: echo:hello") && !text.includes("END-OF-APPROVAL");
    },
    null,
    { polling: "raf" },
  );
  const done = await turnWith(page, "echo slowly");
  assert.match(await answerOf(done), /^Let me check that for you\.\s*Result: echo:hello\. .*END-OF-APPROVAL$/s);
  assert.equal(await done.locator(".approval .outcome").textContent(), "Approved");
  const mirrored = await turnWith(other, "echo slowly");
  assert.equal(await mirrored.locator(".approval .outcome").textContent(), "Approved");
  assert.match(await answerOf(mirrored), /END-OF-APPROVAL$/);

  // From the history, text written before the tool call comes before its card.
  await page.reload();
  await connected(page);
  const replayed = await turnWith(page, "echo slowly");
  const parts = await replayed.locator(".msg.assistant > *").evaluateAll((nodes) => nodes.map((node) => node.className.split(" ")[0]));
  assert.deepEqual(parts, ["md", "tool", "md"]);
  assert.match((await replayed.locator("details.tool .tstatus").textContent()) ?? "", /^done · \d+(\.\d)? m?s$/);
});

test("a request nobody answers times out, and the card says so", { skip }, async (t) => {
  const server = await startServer({
    config: baseConfig(model.baseUrl, APPROVING, { agent: { approval_timeout_seconds: 1 } }),
    secrets: SECRETS,
  });
  t.after(() => server.close());
  const page = await openPage(t, { userId: "page_timeout", url: server.url });
  await say(page, "echo please");
  const card = page.locator("details.tool");
  await card.locator(".approval button.approve").waitFor();
  assert.match((await card.locator(".approval .wait").first().textContent()) ?? "", /^Waits up to 1 s/);
  // Once the tool has ended its card folds up; the outcome stays in it and in its summary.
  await card.locator(".approval.timeout").waitFor({ state: "attached" });
  assert.equal(await card.locator(".approval .outcome").textContent(), "Timed out: nobody answered the approval request within 1 s");
  assert.equal(await card.locator(".tapproval").textContent(), "timed out");
  const article = await turnWith(page, "echo please");
  assert.match(await answerOf(article), /nobody answered the approval request within 1 s/);
});

test("on a phone-width screen nothing overflows sideways and labels name every field", { skip }, async (t) => {
  const page = await openPage(t, { userId: "page_phone", viewport: { width: 360, height: 640 } });
  await say(page, `long ${"unbroken".repeat(30)} text`);
  await turnWith(page, "long unbroken");
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no horizontal scroll");
  for (const label of ["User id", "Token", /^Message/]) assert.equal(await page.getByLabel(label).count(), 1, String(label));
  assert.ok(await page.isVisible("#send"));
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).display), "flex", "the style sheet applies");
  assert.equal(await page.getAttribute("#log", "aria-live"), "polite");
});

test("the page's libraries are served from node_modules under two fixed names only", async () => {
  const base = await serverUrl();
  for (const [name, marker] of [
    ["marked.js", "marked"],
    ["purify.js", "DOMPurify"],
  ] as const) {
    const res = await fetch(`${base}/vendor/${name}`);
    assert.equal(res.status, 200, name);
    assert.equal(res.headers.get("content-type"), "application/javascript; charset=utf-8");
    assert.match(res.headers.get("cache-control") ?? "", /max-age=\d+/);
    const body = await res.text();
    assert.ok(body.includes(marker), name);
    assert.doesNotMatch(body, /sourceMappingURL/);
    const again = await fetch(`${base}/vendor/${name}`, { headers: { "if-none-match": res.headers.get("etag") ?? "" } });
    assert.equal(again.status, 304);
  }
  for (const pathname of ["/vendor/", "/vendor/other.js", "/vendor/..%2Fpackage.json", "/vendor/marked.js/x", "/vendor/purify.min.js"]) {
    assert.equal((await fetch(`${base}${pathname}`)).status, 404, pathname);
  }
  const page = await fetch(`${base}/`);
  const policy = page.headers.get("content-security-policy") ?? "";
  assert.match(policy, /script-src 'self'/);
  assert.match(policy, /script-src [^;,]*\*:\*\/vendor\/marked\.js/);
  assert.match(policy, /img-src 'self' data:/);
  const html = await page.text();
  assert.match(html, /<script src="\/vendor\/marked\.js"><\/script>/);
  assert.match(html, /<script src="\/vendor\/purify\.js"><\/script>/);
  assert.doesNotMatch(html, /localhost:8000|https?:\/\/(?!www\.w3\.org)/, "no hardcoded host, no CDN");
});

/** Without chromium `running` is not started; the vendor test then starts a server of its own. */
let own: { model: ModelServer; running: RunningServer } | undefined;
async function serverUrl(): Promise<string> {
  if (running) return running.url;
  const ownModel = await startModelServer();
  own = { model: ownModel, running: await startServer({ config: baseConfig(ownModel.baseUrl) }) };
  return own.running.url;
}
after(async () => {
  await own?.running.close();
  await own?.model.close();
});
