// The pure parts of attachments (lib/attachments): kinds told by content, image cost, safe
// names, which models take images; and the conversions on real bytes (sharp, unpdf).
import { test } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { imageTokens, IMAGE_MAX_SIDE, pdfPages, prepareImage, sniff } from "../../lib/attachments/convert.ts";
import { safeName, takesImages } from "../../lib/attachments/prepare.ts";
import { makePdf } from "../helpers/pdf.ts";

test("kinds are told by content, not by name", async () => {
  const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: "#fff" } })
    .png()
    .toBuffer();
  const jpeg = await sharp(png).jpeg().toBuffer();
  const webp = await sharp(png).webp().toBuffer();
  const gif = await sharp(png).gif().toBuffer();
  assert.deepEqual(sniff(png), { kind: "image", mime: "image/png" });
  assert.deepEqual(sniff(jpeg), { kind: "image", mime: "image/jpeg" });
  assert.deepEqual(sniff(webp), { kind: "image", mime: "image/webp" });
  assert.deepEqual(sniff(gif), { kind: "image", mime: "image/gif" });
  assert.deepEqual(sniff(makePdf(["x"])), { kind: "pdf" });
  assert.deepEqual(sniff(Buffer.from("const x = 1; // é\n")), { kind: "text" });
  assert.equal(sniff(Buffer.from([0x00, 0x01, 0x02])).kind, "refused");
  assert.equal(sniff(Buffer.from([0xc3, 0x28])).kind, "refused", "invalid UTF-8 is not text");
});

test("images are downscaled to the model's useful size, never enlarged, with a small thumbnail", async () => {
  const big = await sharp({ create: { width: 4000, height: 1000, channels: 3, background: "#08f" } })
    .jpeg()
    .toBuffer();
  const prepared = await prepareImage(big, "image/jpeg");
  assert.deepEqual([prepared.width, prepared.height, prepared.originalWidth], [IMAGE_MAX_SIDE, 392, 4000]);
  assert.equal(prepared.mime, "image/jpeg");
  const thumb = await sharp(Buffer.from(prepared.thumbnail.split(",")[1] ?? "", "base64")).metadata();
  assert.equal(thumb.width, 256);
  const small = await sharp({ create: { width: 40, height: 30, channels: 4, background: "#0000" } })
    .png()
    .toBuffer();
  const kept = await prepareImage(small, "image/png");
  assert.deepEqual([kept.width, kept.height, kept.mime], [40, 30, "image/png"]);
});

test("image cost as OpenAI counts high detail: 85 + 170 per 512-pixel tile", () => {
  assert.equal(imageTokens(512, 512), 85 + 170);
  assert.equal(imageTokens(1024, 1024), 85 + 170 * 4, "scaled to 768×768: 2×2 tiles");
  assert.equal(imageTokens(4096, 2048), 85 + 170 * 6, "to 2048×1024, then 1536×768: 3×2 tiles");
});

test("PDF text keeps page numbers and says which pages have none", async () => {
  const result = await pdfPages(makePdf(["first page", null, "third page"]));
  assert.equal(result.pages, 3);
  assert.equal(result.withoutText, 1);
  assert.equal(
    result.text,
    "[page 1]\nfirst page\n\n[page 2: no text on this page (a scanned page or an image); its content was not read]\n\n[page 3]\nthird page",
  );
});

test("inline names become plain file names; text-only models are known", () => {
  assert.equal(safeName("../../etc/passwd"), "passwd");
  assert.equal(safeName("C:\\Users\\me\\shot 1.png"), "shot 1.png");
  assert.equal(safeName("..."), "attachment");
  assert.equal(safeName("a<b>|c.txt"), "a_b_c.txt");
  assert.equal(takesImages("gpt-4o-mini", undefined), true);
  assert.equal(takesImages("gpt-3.5-turbo", undefined), false);
  assert.equal(takesImages("deepseek/deepseek-chat", undefined), false);
  assert.equal(takesImages("gpt-3.5-turbo", true), true, "openai.vision wins");
  assert.equal(takesImages("llava", false), false);
});
