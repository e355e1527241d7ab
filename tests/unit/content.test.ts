// lib/mcp/content.ts: MCP tool results as the model gets them, each part capped.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mapToolResult } from "../../lib/mcp/content.ts";

const caps = { maxTextChars: 50, maxImageBytes: 100 };

describe("content mapping (pure)", () => {
  test("text, images, audio, resources, links, structured content, errors; each part capped", () => {
    const png = Buffer.from("tiny png").toString("base64");
    const mapped = mapToolResult(
      {
        content: [
          { type: "text", text: "hello" },
          { type: "image", data: png, mimeType: "image/png" },
          { type: "image", data: Buffer.alloc(300).toString("base64"), mimeType: "image/png" },
          { type: "image", data: png, mimeType: "image/tiff" },
          { type: "audio", data: Buffer.alloc(10).toString("base64"), mimeType: "audio/wav" },
          { type: "resource", resource: { uri: "file:///a.txt", mimeType: "text/plain", text: "A".repeat(80) } },
          { type: "resource", resource: { uri: "file:///b.bin", mimeType: "application/zip", blob: Buffer.alloc(20).toString("base64") } },
          { type: "resource_link", uri: "https://x.test/doc", name: "doc", mimeType: "text/html" },
        ],
      },
      { maxTextChars: 1000, maxImageBytes: 100 },
    );
    assert.equal(mapped.ok, true);
    assert.deepEqual(mapped.images, [{ mimeType: "image/png", data: png }]);
    const lines = mapped.text.split("\n");
    assert.equal(lines[0], "hello");
    assert.equal(lines[1], "[image 1: image/png, 8 bytes; attached below]");
    assert.match(lines[2] ?? "", /^\[image: image\/png, 300 bytes; larger than 100 bytes \(limits.max_tool_image_bytes\)/);
    assert.match(lines[3] ?? "", /^\[image: image\/tiff, 8 bytes; this image type cannot be shown to the model\]/);
    assert.equal(lines[4], "[audio: audio/wav, 10 bytes; audio is not passed to the model]");
    assert.equal(lines[5], "[resource file:///a.txt (text/plain)]");
    assert.equal(lines[6], "A".repeat(80));
    assert.equal(lines[7], "[binary resource file:///b.bin: application/zip, 20 bytes]");
    assert.equal(lines[8], "[resource link https://x.test/doc (name: doc, type: text/html)]");

    const capped = mapToolResult({ content: [{ type: "resource", resource: { uri: "u:1", text: "B".repeat(200) } }] }, caps);
    assert.match(capped.text, /^\[resource u:1\]\nB{50}\n\n\[result cut: 200 characters, only the first 50 are shown\]$/);
    const many = mapToolResult({ content: [1, 2, 3].map(() => ({ type: "text", text: "C".repeat(40) })) }, caps);
    assert.match(many.text, /\n\n\[result cut: 122 characters, only the first 50 are shown\]$/);

    assert.deepEqual(mapToolResult({ content: [], structuredContent: { temperature: 21 } }, caps).text, '{\n  "temperature": 21\n}');
    // Text wins over the structured copy of it.
    assert.equal(mapToolResult({ content: [{ type: "text", text: "21 C" }], structuredContent: { t: 21 } }, caps).text, "21 C");
    const failed = mapToolResult({ content: [{ type: "text", text: "bad input" }], isError: true }, caps);
    assert.deepEqual([failed.ok, failed.text], [false, "bad input"]);
  });
});
