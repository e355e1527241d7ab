// The MCP client as the page shows it, in Debian's chromium (playwright-core), against the real server,
// the scripted model and server-everything over stdio: a moving progress bar in the tool card,
// image thumbnails, an elicitation form, and a sampling request approved like a tool call.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { type Browser, type Page } from "playwright-core";
import { chromiumSkip, launchChromium, openChatPage } from "../helpers/browser.ts";
import { baseConfig, ROOT, startServer, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";

const skip = chromiumSkip;
const EVERYTHING = path.join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

function responder(request: ChatRequest) {
  if (request.messages[0]?.content === "You are a helpful test server.") return { content: "SAMPLED-IN-PAGE" };
  return toolDirective(request) ?? { content: "no script" };
}

let browser: Browser;
let model: ModelServer;
let running: RunningServer;

before(async () => {
  if (skip) return;
  model = await startModelServer({ responder });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { everything: { command: process.execPath, args: [EVERYTHING, "stdio"] } },
      { agent: { approval_timeout_seconds: 60 }, limits: { message_burst: 100, messages_per_minute: 1000 } },
    ),
    secrets: { openai: { api_key: "sk-test-page-mcp" } },
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await running?.close();
  await model?.close();
});

function openPage(t: TestContext, userId: string): Promise<Page> {
  return openChatPage(browser, t, running.url, userId);
}

async function say(page: Page, text: string): Promise<void> {
  await page.focus("#input");
  await page.keyboard.insertText(text);
  await page.keyboard.press("Enter");
}

const lastTurn = (page: Page) => page.locator("article.turn").last();

test("a long tool with progress shows a moving bar in its card, and finishes", { skip }, async (t) => {
  const page = await openPage(t, "page_progress");
  await say(page, 'CALL everything_trigger-long-running-operation {"duration":3,"steps":6}');
  const bar = page.locator("details.tool.running .tprogress progress");
  await page.waitForFunction(() => Number(document.querySelector("details.tool .tprogress progress")?.getAttribute("max")) === 6);
  const first = Number(await bar.evaluate((node) => (node as HTMLProgressElement).value));
  // The bar moves: a later value than the first one seen.
  await page.waitForFunction((seen) => {
    const node = document.querySelector<HTMLProgressElement>("details.tool .tprogress progress");
    return node !== null && node.value > seen;
  }, first);
  assert.match((await page.locator(".tprogress-text").textContent()) ?? "", /^\d\/6 \(\d+%\)$/);
  await page.locator("details.tool.ok").waitFor();
  assert.equal(await page.locator(".tprogress").count(), 0, "the bar goes once the tool is done");
  await lastTurn(page).and(page.locator('[data-status="ok"]')).waitFor();
  assert.match((await page.locator("details.tool pre.tresult").textContent()) ?? "", /Long running operation completed/);
});

test("an image a tool returned shows as a thumbnail in the tool card, also after a reload", { skip }, async (t) => {
  const page = await openPage(t, "page_image");
  await say(page, "CALL everything_get-tiny-image {}");
  const img = page.locator("details.tool.ok .tthumbs img");
  await img.waitFor({ state: "attached" });
  assert.match((await img.getAttribute("src")) ?? "", /^data:image\/png;base64,/);
  assert.ok(await img.evaluate((node) => (node as HTMLImageElement).complete && (node as HTMLImageElement).naturalWidth > 0));
  // A reload shows it again, from the history the server keeps.
  await page.reload();
  await page.waitForSelector('#state[data-state="connected"]');
  await page.locator("details.tool .tthumbs img").waitFor({ state: "attached" });
  assert.match((await page.locator("details.tool .tthumbs img").getAttribute("src")) ?? "", /^data:image\/png;base64,/);
});

test("an elicitation is a form: required fields, validation, the answer reaches the server", { skip }, async (t) => {
  const page = await openPage(t, "page_elicit");
  await say(page, "CALL everything_trigger-elicitation-request {}");
  const form = page.locator("form.elicit");
  await form.waitFor();
  assert.match((await form.locator(".ask").textContent()) ?? "", /everything asks: Please provide inputs/);
  // The required field is marked, and the browser refuses to submit without it.
  const name = form.locator('input[name="name"]');
  assert.equal(await name.getAttribute("required"), "");
  await form.locator('button[type="submit"]').click();
  assert.equal(await form.locator(".problem").textContent(), "");
  assert.equal(await page.locator("form.elicit .outcome").count(), 0);
  await name.fill("Ada Lovelace");
  await form.locator('input[name="integer"]').fill("7");
  await form.locator('select[name="untitledSingleSelectEnum"]').selectOption("Joey");
  await form.locator('button[type="submit"]').click();
  await page.locator(".elicit.accept .outcome", { hasText: "Answered" }).waitFor();
  await lastTurn(page).and(page.locator('[data-status="ok"]')).waitFor();
  const result = (await page.locator("details.tool pre.tresult").last().textContent()) ?? "";
  assert.match(result, /Name: Ada Lovelace/);
  assert.match(result, /Favorite Integer: 7/);
});

test("a server's sampling request is approved like a tool call, with its prompt shown", { skip }, async (t) => {
  const page = await openPage(t, "page_sampling");
  await say(page, 'CALL everything_trigger-sampling-request {"prompt":"a haiku"}');
  const box = page.locator(".approval");
  await box.waitFor();
  assert.match((await box.locator(".ask").textContent()) ?? "", /Allow MCP server everything to use the model with this prompt\?/);
  const args = (await page.locator("details.tool.waiting pre.targs").textContent()) ?? "";
  assert.match(args, /Resource trigger-sampling-request context: a haiku/);
  await box.locator("button.approve").click();
  await lastTurn(page).and(page.locator('[data-status="ok"]')).waitFor();
  const toolCard = page.locator("details.tool", { has: page.locator(".tname", { hasText: /^trigger-sampling-request$/ }) });
  assert.match((await toolCard.locator("pre.tresult").textContent()) ?? "", /SAMPLED-IN-PAGE/);
  const samplingCard = page.locator("details.tool", { has: page.locator(".tname", { hasText: "sampling/createMessage" }) });
  assert.equal(await samplingCard.locator(".tapproval").textContent(), "approved");
});
