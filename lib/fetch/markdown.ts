/// <reference lib="dom" />
// (The DOM lib is needed for the types of linkedom, @mozilla/readability and turndown, which
// describe the documents they work on with the browser's DOM types.)

// HTML to Markdown for the fetch tool: main content first (Readability over a linkedom DOM), then
// turndown with GitHub-flavoured tables. Pure and synchronous: the fetch tool runs it in a worker
// (markdown-worker.ts) so a large page never blocks the server's event loop.

import { Readability } from "@mozilla/readability";
import { parseHTML } from "linkedom";
import { createRequire } from "node:module";
import TurndownService from "turndown";
import { stripScriptsAndStyles } from "./raw-text.ts";

export { stripScriptsAndStyles };

// ---------------------------------------------------------------------------------------------
// HTML -> Markdown

const requireCjs = createRequire(import.meta.url);

/** turndown-plugin-gfm (tables, strikethrough, task lists) ships no types: check what it exports. */
function loadGfmPlugin(): TurndownService.Plugin | null {
  try {
    const loaded: unknown = requireCjs("turndown-plugin-gfm");
    if (typeof loaded !== "object" || loaded === null || !("gfm" in loaded)) return null;
    const gfm = loaded.gfm;
    if (typeof gfm !== "function") return null;
    return (service) => {
      Reflect.apply(gfm, undefined, [service]);
    };
  } catch {
    return null;
  }
}

function createTurndown(): TurndownService {
  const service = new TurndownService({
    headingStyle: "atx",
    codeBlockStyle: "fenced",
    bulletListMarker: "-",
  });
  const gfm = loadGfmPlugin();
  if (gfm) service.use(gfm);
  service.remove(["script", "style", "noscript", "template", "iframe", "object", "embed", "canvas"]);
  // Turndown pads list markers to four columns ("-   item"); one space is as valid and costs
  // the model fewer tokens. Otherwise this is turndown's own listItem rule.
  service.addRule("compactListItem", {
    filter: "li",
    replacement: (content, node) => {
      const parent = node.parentElement;
      let prefix = "- ";
      if (parent?.nodeName === "OL") {
        const start = Number(parent.getAttribute("start") ?? "1");
        prefix = `${(Number.isFinite(start) ? start : 1) + Array.from(parent.children).indexOf(node)}. `;
      }
      const isParagraph = /\n$/.test(content);
      const body = content.replace(/^\n+|\n+$/g, "") + (isParagraph ? "\n" : "");
      return prefix + body.replace(/\n/g, `\n${" ".repeat(prefix.length)}`) + (node.nextSibling ? "\n" : "");
    },
  });
  // Inline data: images can be megabytes of base64 that tell the model nothing; keep the alt text.
  service.addRule("dataImages", {
    filter: (node) => node.nodeName === "IMG" && (node.getAttribute("src") ?? "").startsWith("data:"),
    replacement: (_content, node) => node.getAttribute("alt") ?? "",
  });
  return service;
}

// turndown() is synchronous and keeps no state between calls, so one instance serves everyone.
const turndown = createTurndown();

/** Rewrites link and image URLs to absolute ones, so the model can fetch them next. */
function absolutiseLinks(document: Document, pageUrl: string): void {
  const baseHref = document.querySelector("base[href]")?.getAttribute("href");
  let base = pageUrl;
  try {
    if (baseHref) base = new URL(baseHref, pageUrl).href;
  } catch {
    // a broken <base> is ignored, as browsers do
  }
  for (const [selector, attribute] of [
    ["a[href]", "href"],
    ["img[src]", "src"],
  ] as const) {
    for (const element of document.querySelectorAll(selector)) {
      const value = element.getAttribute(attribute) ?? "";
      if (value.startsWith("#") || value.startsWith("data:")) continue;
      if (/^\s*javascript:/i.test(value)) {
        element.removeAttribute(attribute);
        continue;
      }
      try {
        element.setAttribute(attribute, new URL(value, base).href);
      } catch {
        // leave unparsable URLs as they are
      }
    }
  }
}

function readableArticle(html: string, pageUrl: string): { title: string; content: string } | null {
  try {
    const { document } = parseHTML(html);
    absolutiseLinks(document, pageUrl);
    const article = new Readability(document).parse();
    const content = article?.content ?? "";
    if (!article || (article.textContent ?? "").trim() === "") return null;
    return { title: (article.title ?? "").trim(), content };
  } catch {
    return null; // Readability gives up on some documents; the caller falls back to the body
  }
}

function wholeBody(html: string, pageUrl: string): string {
  const { document } = parseHTML(html);
  absolutiseLinks(document, pageUrl);
  return document.body?.innerHTML ?? document.documentElement?.outerHTML ?? html;
}

/** Main content as Markdown, like mcp-server-fetch's readability + markdownify. */
export function htmlToMarkdown(fullHtml: string, pageUrl: string): string {
  const html = stripScriptsAndStyles(fullHtml);
  const article = readableArticle(html, pageUrl);
  let markdown = turndown.turndown(article ? article.content : wholeBody(html, pageUrl)).trim();
  // Readability takes the title out of the content; put it back as the top heading.
  if (article?.title && !markdown.startsWith(`# ${article.title}`)) markdown = `# ${article.title}\n\n${markdown}`;
  return markdown === "" ? "<error>Page failed to be simplified from HTML</error>" : markdown;
}
