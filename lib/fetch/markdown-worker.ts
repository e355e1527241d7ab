// The worker thread that turns HTML into Markdown for the fetch tool (started by markdown-pool.ts
// through markdown-worker.mjs). One message in, one message out, in order.
import { parentPort } from "node:worker_threads";
import { htmlToMarkdown } from "./markdown.ts";

export interface ConvertRequest {
  id: number;
  html: string;
  url: string;
}
export type ConvertReply = { id: number; markdown: string } | { id: number; error: string };

parentPort?.on("message", (request: ConvertRequest) => {
  let reply: ConvertReply;
  try {
    reply = { id: request.id, markdown: htmlToMarkdown(request.html, request.url) };
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(reply);
});
