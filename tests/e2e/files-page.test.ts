// The Files panel of the chat page in a real browser (Debian's chromium, driven by
// playwright-core), against the real server, the real filesystem MCP server and the scripted model.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { type Browser, type Page } from "playwright-core";
import { chromiumSkip, launchChromium } from "../helpers/browser.ts";
import { baseConfig, filesystemEntry, startServer, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";

const skip = chromiumSkip;

/** A 1×1 PNG. */
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", "base64");
const CSV = "region,sales\nnorth,120\nsouth,95\n";
const SUMMARY = "# Summary\n\n2 regions; north sold most (120).\n";

let browser: Browser;
let model: ModelServer;
let running: RunningServer;

before(async () => {
  if (skip) return;
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "ok" } });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: filesystemEntry },
      { limits: { max_upload_bytes: 64 * 1024, workspace_bytes: 100 * 1024 } },
    ),
    secrets: { openai: { api_key: "sk-test-files-page" } },
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await running?.close();
  await model?.close();
});

/** Fails the test if the page throws or breaks its Content-Security-Policy. */
function checkErrors(t: TestContext, page: Page): void {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) errors.push(message.text());
  });
  t.after(() => assert.deepEqual(errors, [], "no script error or policy violation in the page"));
}

/** A fresh browser context for `userId`, the page connected (with `token`, if given). */
async function openPage(
  t: TestContext,
  userId: string,
  viewport?: { width: number; height: number },
  server: { url: string; token?: string } = running,
): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true, ...(viewport ? { viewport } : {}) });
  context.setDefaultTimeout(15000);
  t.after(() => context.close());
  await context.addInitScript(
    ([id, token]) => {
      localStorage.setItem("chat.user_id", id ?? "");
      if (token) localStorage.setItem("chat.token", token);
    },
    [userId, server.token],
  );
  const page = await context.newPage();
  checkErrors(t, page);
  await page.goto(server.url);
  await page.waitForSelector('#state[data-state="connected"]');
  return page;
}

async function openFiles(page: Page): Promise<void> {
  if (await page.isHidden("#files")) await page.click("#files-toggle");
  await page.waitForSelector("#files:not([hidden])");
}

/** Drops files onto the conversation as a person dragging them from the desktop would. */
async function dropFiles(page: Page, files: { name: string; type: string; base64: string }[]): Promise<void> {
  await page.evaluate((list) => {
    const transfer = new DataTransfer();
    for (const file of list) {
      const bytes = Uint8Array.from(atob(file.base64), (char) => char.charCodeAt(0));
      transfer.items.add(new File([bytes], file.name, { type: file.type }));
    }
    const target = document.getElementById("log");
    if (!target) throw new Error("no #log");
    for (const type of ["dragenter", "dragover", "drop"]) {
      target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, files);
}

const fileRow = (page: Page, relative: string) => page.locator(`#files-tree li[data-path="${relative}"]`);

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#input", text);
  await page.keyboard.press("Enter");
}

async function turnDone(page: Page, input: string): Promise<string> {
  const article = page.locator("article.turn", { has: page.locator(".user .bubble", { hasText: input }) }).last();
  await article.and(page.locator('[data-status="ok"]')).waitFor({ timeout: 60000 });
  return (await article.locator(".md").allTextContents()).join("").trim();
}

test(
  "a file dropped on the chat is uploaded and referenced; the agent reads it and writes summary.md; both tabs show it; it downloads byte for byte",
  { skip },
  async (t) => {
    const page = await openPage(t, "files_page_a");
    await openFiles(page);
    const other = await page.context().newPage();
    checkErrors(t, other);
    await other.goto(running.url);
    await other.waitForSelector('#state[data-state="connected"]');
    // The panel's open state is remembered: the second tab opens with it.
    await other.waitForSelector("#files:not([hidden])");

    await dropFiles(page, [{ name: "sales.csv", type: "text/csv", base64: Buffer.from(CSV).toString("base64") }]);
    await page.locator(".upload[data-done] .status", { hasText: "Uploaded" }).waitFor();
    assert.equal(await page.inputValue("#input"), "`sales.csv` ", "the drop put a reference into the message box");
    await fileRow(page, "sales.csv").waitFor();
    await fileRow(other, "sales.csv").waitFor();
    assert.equal(readFileSync(path.join(running.configDir, "workspace/files_page_a/sales.csv"), "utf8"), CSV);
    assert.match((await fileRow(page, "sales.csv").locator(".file-meta").textContent()) ?? "", /^\d+ B · /);

    await say(page, 'CALL filesystem_read_text_file {"path":"sales.csv"}');
    assert.match(await turnDone(page, "filesystem_read_text_file"), /north,120/);
    await say(page, `CALL filesystem_write_file ${JSON.stringify({ path: "summary.md", content: SUMMARY })}`);
    await turnDone(page, "filesystem_write_file");
    await fileRow(page, "summary.md").waitFor();
    await fileRow(other, "summary.md").waitFor();

    const [download] = await Promise.all([other.waitForEvent("download"), fileRow(other, "summary.md").getByText("Download").click()]);
    assert.equal(download.suggestedFilename(), "summary.md");
    const downloaded = readFileSync(await download.path());
    assert.deepEqual(downloaded, readFileSync(path.join(running.configDir, "workspace/files_page_a/summary.md")));
    assert.equal(downloaded.toString("utf8"), SUMMARY);

    // Preview shows the text; Attach puts the reference at the cursor.
    await fileRow(other, "summary.md").locator(".file-name").click();
    assert.equal(await other.locator("#preview-body pre").textContent(), SUMMARY);
    await fileRow(other, "summary.md").getByText("Attach").click();
    assert.equal(await other.inputValue("#input"), "`summary.md` ");
    assert.equal(await other.evaluate(() => document.activeElement?.id), "input");

    // Delete asks first; both tabs lose the file.
    other.once("dialog", (dialog) => void dialog.accept());
    await fileRow(other, "sales.csv").getByText("Delete").click();
    await fileRow(page, "sales.csv").waitFor({ state: "detached" });
    await fileRow(other, "sales.csv").waitFor({ state: "detached" });
    other.once("dialog", (dialog) => void dialog.dismiss());
    await fileRow(other, "summary.md").getByText("Delete").click();
    assert.equal(await fileRow(other, "summary.md").count(), 1, "a dismissed confirm deletes nothing");
  },
);

test("images preview from memory under the page's policy; folders show as a tree; names are text, never HTML", { skip }, async (t) => {
  const page = await openPage(t, "files_page_b");
  await openFiles(page);
  const hostile = '<img src=x onerror="window.__xss=1">.txt';
  for (const [name, body] of [
    ["pics/dot.png", PNG],
    [hostile, Buffer.from("hi")],
  ] as const) {
    const res = await fetch(`${running.url}/files/files_page_b/${name.split("/").map(encodeURIComponent).join("/")}`, {
      method: "PUT",
      headers: { "x-requested-with": "test" },
      body,
    });
    assert.ok(res.ok, await res.text());
  }
  await fileRow(page, "pics/dot.png").waitFor();
  assert.equal(await page.locator('#files-tree li[data-path="pics"] > details > summary').textContent(), "pics/");
  await fileRow(page, "pics/dot.png").locator(".file-name").click();
  const img = page.locator("#preview-body img");
  await img.waitFor();
  assert.match((await img.getAttribute("src")) ?? "", /^blob:/);
  await page.waitForFunction(() => (document.querySelector("#preview-body img") as HTMLImageElement | null)?.naturalWidth === 1);
  const row = page.locator("#files-tree li.file-row").filter({ hasText: "onerror" });
  assert.equal(await row.locator(".file-name").textContent(), hostile);
  assert.equal(await page.locator("#files-tree img").count(), 0);
  assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
});

test("uploads by the button show progress; too big and quota full are clear errors", { skip }, async (t) => {
  const page = await openPage(t, "files_page_c");
  await openFiles(page);
  const chooser = page.waitForEvent("filechooser");
  await page.click("#files-upload");
  await (
    await chooser
  ).setFiles([
    { name: "one.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(60 * 1024, 1) },
    { name: "huge.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(65 * 1024, 2) },
  ]);
  await page
    .locator(".upload", { hasText: "huge.bin" })
    .locator(".status.error", { hasText: /Too big: .*64 KiB.*limits\.max_upload_bytes/ })
    .waitFor();
  await page.locator(".upload[data-done]", { hasText: "one.bin" }).waitFor();
  const bar = page.locator(".upload", { hasText: "one.bin" }).locator("progress");
  assert.deepEqual(
    await bar.evaluate((node: HTMLProgressElement) => [node.value, node.max]),
    [60 * 1024, 60 * 1024],
    "its progress bar is full",
  );
  assert.equal(await page.inputValue("#input"), "", "the button does not attach");
  await fileRow(page, "one.bin").waitFor();
  // A second 60 KiB file would pass the 100 KiB workspace quota: the server refuses it.
  await dropFiles(page, [{ name: "two.bin", type: "application/octet-stream", base64: Buffer.alloc(60 * 1024, 3).toString("base64") }]);
  await page
    .locator(".upload", { hasText: "two.bin" })
    .locator(".status.error", { hasText: /Workspace full: .*limits\.workspace_bytes/ })
    .waitFor();
  assert.equal(await fileRow(page, "two.bin").count(), 0);
  assert.match((await page.textContent("#files-usage")) ?? "", /60\.0 KiB of 100 KiB|60 KiB of 100 KiB/);
});

test("on a phone the panel is a drawer over the chat that closes", { skip }, async (t) => {
  const page = await openPage(t, "files_page_d", { width: 360, height: 640 });
  await page.click("#files-toggle");
  await page.waitForSelector("#files:not([hidden])");
  const box = await page.locator("#files").boundingBox();
  assert.ok(box && box.width <= 360 && box.x >= 0, JSON.stringify(box));
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no horizontal scroll");
  await page.getByRole("button", { name: "Close the files panel" }).click();
  await page.waitForSelector("#files", { state: "hidden" });
  assert.equal(await page.getAttribute("#files-toggle", "aria-expanded"), "false");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "files-toggle");
});

test("with a token the panel sends it in a header: listing, upload, preview and download all work", { skip }, async (t) => {
  const guarded = await startServer({
    config: baseConfig(model.baseUrl, {}, { server: { auth_token: "page-files-token" } }),
    secrets: { openai: { api_key: "sk-test-files-page" } },
  });
  t.after(() => guarded.close());
  const page = await openPage(t, "files_page_e", undefined, { url: guarded.url, token: "page-files-token" });
  const sent: string[] = [];
  page.on("request", (request) => {
    if (request.url().includes("/files/")) sent.push(`${request.method()} ${request.url()} ${request.headers().authorization ?? "-"}`);
  });
  await openFiles(page);
  const bytes = Buffer.from("col\n1\n2\n");
  await dropFiles(page, [{ name: "t.csv", type: "text/csv", base64: bytes.toString("base64") }]);
  await fileRow(page, "t.csv").waitFor();
  await fileRow(page, "t.csv").locator(".file-name").click();
  assert.equal(await page.locator("#preview-body pre").textContent(), bytes.toString());
  const [download] = await Promise.all([page.waitForEvent("download"), fileRow(page, "t.csv").getByText("Download").click()]);
  assert.equal(download.suggestedFilename(), "t.csv");
  assert.deepEqual(readFileSync(await download.path()), bytes);
  assert.ok(sent.length >= 4, sent.join("\n"));
  for (const line of sent) {
    assert.match(line, / Bearer page-files-token$/, "the token goes in the header");
    assert.doesNotMatch(line, /token=/, "never in the URL");
  }
});

/** Tries to run the user's files as scripts (classic, module, dynamic import, worker) and a style sheet. */
function tryToRun(page: Page, base: string) {
  return page.evaluate(async (base) => {
    const blocked: string[] = [];
    document.addEventListener("securitypolicyviolation", (event) => blocked.push(event.blockedURI));
    const classic = document.createElement("script");
    classic.src = `${base}evil.js`;
    const module = document.createElement("script");
    module.type = "module";
    module.src = `${base}evil.mjs`;
    const sheet = document.createElement("link");
    sheet.rel = "stylesheet";
    sheet.href = `${base}evil.css`;
    const worker = new Promise<string>((resolve) => {
      try {
        const running = new Worker(`${base}evil.js`);
        running.onmessage = () => resolve("loaded");
        running.onerror = () => resolve("failed");
      } catch {
        resolve("failed");
      }
    });
    // One after the other, so the outcome does not depend on which loads first (no named helpers:
    // the test runner's compiler would wrap them in a function the page does not have).
    const loaded: string[] = [];
    for (const node of [classic, module, sheet]) {
      loaded.push(
        await new Promise<string>((resolve) => {
          node.onload = () => resolve("loaded");
          node.onerror = () => resolve("failed");
          document.head.append(node);
        }),
      );
    }
    const outcome = {
      classic: loaded[0],
      module: loaded[1],
      dynamic: await import(`${base}evil.mjs`).then(
        () => "loaded",
        () => "failed",
      ),
      worker: await worker,
      sheet: loaded[2],
      ran: (window as unknown as { __evil?: number }).__evil ?? 0,
      styled: getComputedStyle(document.body).outlineStyle === "dotted",
    };
    return { ...outcome, blocked };
  }, base);
}

test("a script the user or the agent writes under /files never runs on the page's origin", { skip }, async (t) => {
  const base = "/files/files_page_js/";
  const evil = "window.__evil = (window.__evil || 0) + 1; if (typeof document === 'undefined') postMessage('ran');";
  for (const [name, body] of [
    ["evil.js", evil],
    ["evil.mjs", `${evil} export {};`],
    ["evil.css", "body { outline: 3px dotted red; }"],
  ] as const) {
    const res = await fetch(`${running.url}${base}${name}`, { method: "PUT", headers: { "x-requested-with": "test" }, body });
    assert.ok(res.ok, await res.text());
  }
  // The files are there to be had: it is the page's policy, and their type, that keep them from running.
  const served = await fetch(`${running.url}${base}evil.js`);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), evil);
  assert.equal(served.headers.get("content-type"), "text/plain");
  assert.equal(served.headers.get("x-content-type-options"), "nosniff");
  assert.match(served.headers.get("content-disposition") ?? "", /^attachment/);

  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(running.url);
  await page.waitForSelector('#state[data-state="connected"]');
  const outcome = await tryToRun(page, base);
  assert.deepEqual(
    { ...outcome, blocked: [...new Set(outcome.blocked.map((url) => new URL(url).pathname))].sort() },
    {
      classic: "failed",
      module: "failed",
      dynamic: "failed",
      worker: "failed",
      sheet: "failed",
      ran: 0,
      styled: false,
      blocked: [`${base}evil.css`, `${base}evil.js`, `${base}evil.mjs`],
    },
    "the page's policy refused every one",
  );
  assert.deepEqual(errors, []);

  // Even with the page's policy switched off, a file under /files is no script: text/plain + nosniff.
  const unprotected = await browser.newContext({ bypassCSP: true });
  t.after(() => unprotected.close());
  const bare = await unprotected.newPage();
  await bare.goto(running.url);
  await bare.waitForSelector('#state[data-state="connected"]');
  const { classic, module, dynamic, worker, ran } = await tryToRun(bare, base);
  assert.deepEqual(
    { classic, module, dynamic, worker, ran },
    { classic: "failed", module: "failed", dynamic: "failed", worker: "failed", ran: 0 },
  );
});
