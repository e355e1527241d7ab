// Debian's chromium for the page tests, driven by playwright-core (which never downloads a browser):
// where it is, whether the tests skip without it, and how it is started.
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { externalSkip, findExecutable } from "./external.ts";

export const CHROMIUM = findExecutable("CHROMIUM_PATH", ["/usr/bin/chromium"]);

/** The `skip` option of every browser test: a reason with the apt command when chromium is missing. */
export const chromiumSkip = externalSkip(`chromium at ${process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"}`, CHROMIUM, "chromium");

/** Headless, and quiet on a closed network: no background requests that would be refused by the dozen. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * The chat page for `userId` in a context of its own, once connected; any script error or policy
 * violation in the page fails the test when it ends.
 */
export async function openChatPage(browser: Browser, t: TestContext, url: string, userId: string, timeoutMs = 20000): Promise<Page> {
  const context = await browser.newContext();
  context.setDefaultTimeout(timeoutMs);
  t.after(() => context.close());
  await context.addInitScript((id) => localStorage.setItem("chat.user_id", id), userId);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) errors.push(message.text());
  });
  t.after(() => assert.deepEqual(errors, [], "no script error or policy violation in the page"));
  await page.goto(url);
  await page.waitForSelector('#state[data-state="connected"]');
  return page;
}
