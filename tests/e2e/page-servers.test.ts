// The page's list of MCP servers: each server's state, Retry for a failed one, and "Connect
// <server>" for one that needs the user's sign-in — clicked, the sign-in opens, and the server
// becomes ready in the same page. Real chromium, a real OAuth-protected MCP server.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { chromiumSkip, launchChromium, openChatPage } from "../helpers/browser.ts";
import { startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, startServer, type RunningServer } from "../helpers/harness.ts";
import { startOAuthMcpServer, type OAuthMcpServer } from "../helpers/oauth-mcp-server.ts";

const skip = chromiumSkip;
let browser: Browser;
let model: ModelServer;
let remote: OAuthMcpServer;
let running: RunningServer;

before(async () => {
  if (skip) return;
  model = await startModelServer();
  remote = await startOAuthMcpServer();
  running = await startServer({
    config: baseConfig(model.baseUrl, {
      protected: { transport: "streamable_http", url: remote.url },
      broken: { command: "definitely-not-installed-xyz" },
    }),
    secrets: { openai: { api_key: "sk-test-page-servers" } },
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await running?.close();
  await remote?.close();
  await model?.close();
});

function openPage(t: TestContext, userId: string): Promise<Page> {
  return openChatPage(browser, t, running.url, userId);
}

test("the page lists the servers; Connect signs in and the server becomes ready; a failed one offers Retry", { skip }, async (t) => {
  const page = await openPage(t, "page_servers");
  await page.locator("#servers li", { hasText: "protected: stopped" }).waitFor();
  await page.focus("#input");
  await page.keyboard.insertText("hello");
  await page.keyboard.press("Enter");
  const connect = page.getByRole("link", { name: "Connect protected" });
  await connect.waitFor();
  const broken = page.locator('#servers li[data-state="failed"]', { hasText: "broken" });
  await broken.getByRole("button", { name: "Retry" }).waitFor();
  assert.match((await broken.getAttribute("title")) ?? "", /command not found/);
  // The sign-in opens in a new tab; the authorization server sends it back to /oauth/callback.
  const [signIn] = await Promise.all([page.context().waitForEvent("page"), connect.click()]);
  await signIn.waitForLoadState();
  assert.match((await signIn.textContent("h1")) ?? "", /Signed in to protected/);
  await page.locator("#servers li", { hasText: "protected: ready (1 tools)" }).waitFor();
  await page.locator("p.notice", { hasText: "Signed in to protected" }).waitFor();
});
