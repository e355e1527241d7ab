// The worker thread that turns HTML into Markdown for the fetch tool (started by markdown-pool.ts
// through markdown-worker.mjs). One message in, one message out, in order.
import { parentPort } from "node:worker_threads";
import { htmlToMarkdown } from "./markdown.ts";
import { htmlToRawText, nestingDepth } from "./raw-text.ts";

export interface ConvertRequest {
  id: number;
  html: string;
  url: string;
  /** Markup nested deeper than this is not converted: its text comes back instead (`tooDeep`). */
  maxDepth: number;
}
export type ConvertReply = { id: number; markdown: string } | { id: number; error: string } | { id: number; tooDeep: number; text: string };

parentPort?.on("message", (request: ConvertRequest) => {
  let reply: ConvertReply;
  try {
    const depth = nestingDepth(request.html, request.maxDepth);
    reply =
      depth > request.maxDepth
        ? { id: request.id, tooDeep: depth, text: htmlToRawText(request.html) }
        : { id: request.id, markdown: htmlToMarkdown(request.html, request.url) };
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(reply);
});
