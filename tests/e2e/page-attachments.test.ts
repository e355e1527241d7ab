// Attachments and thinking in the chat page, in a real browser (Debian's chromium, driven by
// playwright-core): a screenshot pasted and a PDF dropped go with the message; the model gets
// both; the page shows what was sent (thumbnail, pages, tokens) and the model's thinking collapsed.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { type Browser, type Page } from "playwright-core";
import sharp from "sharp";
import { chromiumSkip, launchChromium, openChatPage } from "../helpers/browser.ts";
import { baseConfig, startServer, type RunningServer } from "../helpers/harness.ts";
import { startModelServer, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";
import { makePdf } from "../helpers/pdf.ts";

const skip = chromiumSkip;

let browser: Browser;
let model: ModelServer;
let running: RunningServer;

/** What the model was given besides the text: "image" and the PDF's last page, if there. */
function seen(request: ChatRequest): string {
  const parts = request.messages.flatMap((message) => (message.role === "user" && Array.isArray(message.content) ? message.content : []));
  const image = parts.some((part) => part.type === "image_url");
  const pdf = parts.some((part) => part.type === "text" && part.text.includes("[page 20]\nFigure 20"));
  return `image:${image} pdf:${pdf}`;
}

before(async () => {
  if (skip) return;
  model = await startModelServer({ responder: (request) => ({ reasoning: "Looking at both files.", content: seen(request) }) });
  running = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-test-page-attach" } } });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await running?.close();
  await model?.close();
});

function openPage(t: TestContext, userId: string): Promise<Page> {
  return openChatPage(browser, t, running.url, userId, 15000);
}

/** Files as a person pastes (into the message box) or drops (onto the conversation) them. */
async function give(page: Page, how: "paste" | "drop", files: { name: string; type: string; base64: string }[]): Promise<void> {
  await page.evaluate(
    ([how, list]) => {
      const transfer = new DataTransfer();
      for (const file of list) {
        const bytes = Uint8Array.from(atob(file.base64), (char) => char.charCodeAt(0));
        transfer.items.add(new File([bytes], file.name, { type: file.type }));
      }
      if (how === "paste") {
        document
          .getElementById("input")
          ?.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
        return;
      }
      const target = document.getElementById("log");
      for (const type of ["dragenter", "dragover", "drop"])
        target?.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    },
    [how, files] as const,
  );
}

test(
  "a pasted screenshot and a dropped 20-page PDF reach the model; the page shows what was sent and the thinking",
  { skip },
  async (t) => {
    const page = await openPage(t, "page_attacher");
    const screenshot = await sharp({ create: { width: 2400, height: 1600, channels: 3, background: "#3a6" } })
      .png()
      .toBuffer();
    const pdf = makePdf(Array.from({ length: 20 }, (_, n) => `Figure ${n + 1}`));
    await give(page, "paste", [{ name: "screenshot.png", type: "image/png", base64: screenshot.toString("base64") }]);
    await give(page, "drop", [{ name: "report.pdf", type: "application/pdf", base64: pdf.toString("base64") }]);
    await page.locator("#attachments li", { hasText: "screenshot.png" }).waitFor();
    await page.locator("#attachments li", { hasText: "report.pdf" }).waitFor();
    assert.equal(await page.inputValue("#input"), "", "files are attached, not written into the message");
    await page.fill("#input", "Does the chart match the last page?");
    await page.keyboard.press("Enter");
    const article = page.locator("article.turn").last();
    await article.and(page.locator('[data-status="ok"]')).waitFor({ timeout: 60000 });
    assert.equal((await article.locator(".md").allTextContents()).join("").trim(), "image:true pdf:true");
    assert.equal(await page.locator("#attachments li").count(), 0, "the composer is empty again");
    const sent = await article.locator(".sent-attachment").allTextContents();
    assert.match(sent[0] ?? "", /^screenshot\.png — image 1568×1045 \(from 2400×1600\)/);
    assert.match(sent[1] ?? "", /^report\.pdf — 20 pages, \d+ tokens$/);
    assert.match((await article.locator(".sent-attachment img").getAttribute("src")) ?? "", /^data:image\/webp;base64,/);
    const thinking = article.locator("details.thinking");
    assert.equal(await thinking.getAttribute("open"), null, "the thinking is collapsed");
    assert.equal(await thinking.locator(".thinking-text").textContent(), "Looking at both files.");
    // A reload draws the same from the history.
    await page.reload();
    await page.waitForSelector('#state[data-state="connected"]');
    const again = page.locator("article.turn").last();
    await again.locator(".sent-attachment").first().waitFor();
    assert.deepEqual(await again.locator(".sent-attachment").allTextContents(), sent);
    assert.equal(await again.locator("details.thinking .thinking-text").textContent(), "Looking at both files.");
  },
);
