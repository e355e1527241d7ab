/// <reference lib="dom" />
// (The DOM lib is needed for the types of linkedom, @mozilla/readability and turndown, which
// describe the documents they work on with the browser's DOM types.)

// Built-in web fetch MCP server: a TypeScript replacement for the Python `mcp-server-fetch`,
// with the same tool and output format, plus the safety limits an agent server needs:
// an SSRF guard on every connection (address-guard.ts), hand-followed redirects, a total deadline
// and a byte cap per fetch, and robots.txt.
//
// One server instance serves every user session, so nothing here keeps per-call state outside
// the handler.

import { CONFIG_FILE, mcpServerDefaults, type McpServerConfig } from "../config.ts";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { addAbortSignal, pipeline, type Readable } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { z } from "zod";
import { checkUrlTarget, createGuardedLookup, FetchRefusedError, parseAllowList, type AllowList } from "./address-guard.ts";
import { MarkdownConverter } from "./markdown-pool.ts";
import { RobotsTooComplex, robotsPatternMatches } from "./robots-match.ts";

export interface FetchToolOptions {
  /** Host names, IPs or CIDRs (v4/v6) that may be fetched although private/loopback/etc. */
  allowHosts: string[];
  userAgent: string;
  ignoreRobotsTxt: boolean;
  /** Total deadline of one tool call: robots.txt, connects, redirects, headers and body. */
  timeoutMs: number;
  /** Most bytes read from one response body (after decompression); the rest is never read. */
  maxBytes: number;
  /** Markup longer than this (characters) is cut before it is converted to Markdown. */
  maxConvertChars: number;
  /** Worker threads converting HTML to Markdown; 0: one per core but one, at least one. */
  convertWorkers: number;
  /** One page's own time on a worker, ms; past it the page's text is given instead. */
  convertBudgetMs: number;
  /** Markup nested deeper than this is given as text. */
  maxConvertDepth: number;
}

/** The fetch tool's options from its config entry (where every default lives). */
export function fetchToolOptions(entry: McpServerConfig): FetchToolOptions {
  return {
    allowHosts: entry.allow_hosts,
    userAgent: entry.user_agent,
    ignoreRobotsTxt: entry.ignore_robots_txt,
    timeoutMs: entry.fetch_timeout_seconds * 1000,
    maxBytes: entry.max_fetch_bytes,
    maxConvertChars: entry.max_convert_chars,
    convertWorkers: entry.convert_workers,
    convertBudgetMs: entry.convert_budget_seconds * 1000,
    maxConvertDepth: entry.max_convert_depth,
  };
}

export const defaultFetchToolOptions: FetchToolOptions = fetchToolOptions(mcpServerDefaults());

/** Same cap as common crawlers (RFC 9309 asks for at least 500 KiB to be parsed). */
const MAX_ROBOTS_BYTES = 512 * 1024;
export const MAX_REDIRECTS = 5;
/** Character steps one robots.txt verdict may take (tens of ms at worst): beyond, the fetch is refused. */
export const MAX_ROBOTS_STEPS = 5_000_000;
/** Longer URLs are refused: nothing legitimate needs one, and robots.txt matching is linear in it. */
export const MAX_URL_CHARS = 16_384;

const TOOL_DESCRIPTION = `Fetches a URL from the internet and optionally extracts its contents as markdown.

Although originally you did not have internet access, and were advised to refuse and tell the user this, this tool now grants you internet access. Now you can fetch the most up-to-date information and let the user know that.

Only public http(s) addresses can be fetched: local, private and cloud metadata addresses are refused unless the server's configuration allows them. Text content only: images, PDFs and other binary files are refused.`;

/** The `_meta` key under which the agent server names the user a shared built-in serves. */
export const OWNER_META_KEY = "mcp-agent/user";

/** A failure whose message is already what the model should see. */
class ToolFailure extends Error {
  override name = "ToolFailure";
}

// ---------------------------------------------------------------------------------------------
// robots.txt (RFC 9309), kept small: groups of User-agent lines, Allow/Disallow with * and $,
// longest match wins, Allow wins a tie.

export interface RobotsRule {
  allow: boolean;
  pattern: string;
}
interface RobotsGroup {
  agents: string[];
  rules: RobotsRule[];
}

export function parseRobotsTxt(text: string): RobotsGroup[] {
  const groups: RobotsGroup[] = [];
  let current: RobotsGroup | null = null;
  let inAgentLines = false; // consecutive User-agent lines share one group
  for (const rawLine of text.split(/\r\n|\r|\n/)) {
    const line = rawLine.replace(/#.*$/, "").trim();
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === "user-agent" || key === "useragent" || key === "user agent") {
      if (!current || !inAgentLines) {
        current = { agents: [], rules: [] };
        groups.push(current);
      }
      current.agents.push(productToken(value));
      inAgentLines = true;
    } else if (key === "allow" || key === "disallow") {
      inAgentLines = false;
      // An empty Disallow means "nothing is disallowed": it adds no rule.
      if (current && value !== "") current.rules.push({ allow: key === "allow", pattern: value });
    }
    // Other keys (Sitemap, Crawl-delay, ...) do not affect what may be fetched.
  }
  return groups;
}

/** "ModelContextProtocol/1.0 (...)" -> "modelcontextprotocol": robots.txt matches on this token. */
function productToken(userAgent: string): string {
  return (userAgent.trim().match(/^[^\s/]+/)?.[0] ?? "").toLowerCase();
}

/** Upper-cases %xx escapes and percent-encodes non-ASCII, so a rule and a URL path compare alike. */
function normaliseRobotsPath(path: string): string {
  return path.replace(/%[0-9a-f]{2}/gi, (escape) => escape.toUpperCase()).replace(/[\u0080-\uffff]+/g, (text) => encodeURIComponent(text));
}

export interface RobotsVerdict {
  allowed: boolean;
  /** The rule that decided, if any. */
  rule?: RobotsRule;
}

/** Decides whether `userAgent` may fetch `path` (path plus query, e.g. "/a/b?c=1"). */
export function robotsVerdict(robotsText: string, userAgent: string, path: string): RobotsVerdict {
  if (path === "/robots.txt") return { allowed: true };
  const groups = parseRobotsTxt(robotsText);
  const token = productToken(userAgent);
  // Every group naming our product token applies (merged); only if there is none, the "*" ones.
  let applicable = groups.filter((group) => group.agents.includes(token));
  if (applicable.length === 0) applicable = groups.filter((group) => group.agents.includes("*"));
  const target = normaliseRobotsPath(path);
  // One budget for the whole verdict: linear per rule, but a file of many rules times a long path is bounded too.
  const budget = { steps: MAX_ROBOTS_STEPS };
  let best: RobotsRule | undefined;
  let bestLength = -1;
  for (const rule of applicable.flatMap((group) => group.rules)) {
    const pattern = normaliseRobotsPath(rule.pattern);
    if (!robotsPatternMatches(pattern, target, budget)) continue;
    if (pattern.length > bestLength || (pattern.length === bestLength && rule.allow)) {
      best = rule;
      bestLength = pattern.length;
    }
  }
  return best ? { allowed: best.allow, rule: best } : { allowed: true };
}

export function isRobotsAllowed(robotsText: string, userAgent: string, path: string): boolean {
  return robotsVerdict(robotsText, userAgent, path).allowed;
}

// ---------------------------------------------------------------------------------------------
// Content types

export type ContentKind = "html" | "text" | "binary" | "unknown";

const TEXT_MIME_TYPES = new Set([
  "application/json",
  "application/xml",
  "application/yaml",
  "application/x-yaml",
  "application/toml",
  "application/x-ndjson",
  "application/graphql",
  "application/sql",
  "application/x-sh",
  "application/x-httpd-php",
  "application/x-www-form-urlencoded",
]);

/** The media type, lower case, without parameters ("text/html; charset=utf-8" -> "text/html"). */
export function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

export function classifyContentType(contentType: string): ContentKind {
  const mime = mediaType(contentType);
  if (mime === "") return "unknown";
  if (mime === "text/html" || mime === "application/xhtml+xml") return "html";
  if (
    mime.startsWith("text/") ||
    TEXT_MIME_TYPES.has(mime) ||
    mime.endsWith("+json") ||
    mime.endsWith("+xml") ||
    mime.includes("javascript") ||
    mime.includes("ecmascript")
  ) {
    return "text";
  }
  if (
    /^(image|audio|video|font|model)\//.test(mime) ||
    /octet-stream|pdf|zip|compressed|tar|rar|7z|bzip|msword|ms-excel|ms-powerpoint|officedocument|opendocument|wasm|executable|java-archive|sqlite|protobuf/.test(
      mime,
    )
  ) {
    return "binary";
  }
  return "unknown";
}

/** For untyped or unknown types: a NUL byte near the start means binary, as `file` and git guess. */
function looksBinary(bytes: Buffer): boolean {
  return bytes.subarray(0, 8192).includes(0);
}

function looksLikeHtml(text: string): boolean {
  return /<html[\s>]|<!doctype html/i.test(text.slice(0, 512));
}

function charsetOf(contentType: string, bytes: Buffer, html: boolean): string {
  const fromHeader = contentType.match(/charset\s*=\s*"?([^";\s]+)/i)?.[1];
  if (fromHeader) return fromHeader;
  if (html) {
    const head = bytes.subarray(0, 2048).toString("latin1");
    const fromMeta = head.match(/<meta[^>]+charset\s*=\s*["']?([\w-]+)/i)?.[1];
    if (fromMeta) return fromMeta;
  }
  return "utf-8";
}

/** Decodes the body; when it was cut at the byte cap, a partial last character is dropped. */
function decodeBody(bytes: Buffer, charset: string, truncated: boolean): string {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset);
  } catch {
    decoder = new TextDecoder("utf-8"); // unknown label: utf-8 is the best guess on the web
  }
  return decoder.decode(bytes, { stream: truncated });
}

// ---------------------------------------------------------------------------------------------
// HTTP with the guard

interface FetchContext {
  allow: AllowList;
  userAgent: string;
  signal: AbortSignal;
  markdown: MarkdownConverter;
  /** Whose call this is (the user id the agent server passes in the request's _meta): conversions take turns by it. */
  owner: string;
}

interface OpenedResponse {
  url: URL;
  response: IncomingMessage;
}

/** One request, no redirects. The URL is checked first; names are checked again in `lookup`. */
function requestOnce(url: URL, ctx: FetchContext): Promise<IncomingMessage> {
  const refused = checkUrlTarget(url, ctx.allow);
  if (refused) return Promise.reject(new FetchRefusedError(refused));
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: "GET",
        headers: {
          "User-Agent": ctx.userAgent,
          Accept: "text/html,application/xhtml+xml,application/xml;q=0.9,text/*;q=0.8,*/*;q=0.5",
          "Accept-Encoding": "gzip, deflate, br",
        },
        lookup: createGuardedLookup(url.href, ctx.allow),
        // No shared agent: a pooled keep-alive socket could have been opened without our lookup.
        agent: false,
        signal: ctx.signal,
      },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** GET with redirects followed by hand, so that every hop goes through the guard. */
async function openUrl(url: URL, ctx: FetchContext): Promise<OpenedResponse> {
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const response = await requestOnce(current, ctx);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (!isRedirect(status) || location === undefined) return { url: current, response };
    response.destroy(); // the redirect body is not needed
    if (redirects >= MAX_REDIRECTS) {
      throw new ToolFailure(`Failed to fetch ${url.href}: more than ${MAX_REDIRECTS} redirects`);
    }
    try {
      current = new URL(location, current);
    } catch {
      throw new ToolFailure(`Failed to fetch ${url.href}: redirect to an invalid URL (${location})`);
    }
  }
}

interface Body {
  bytes: Buffer;
  /** The body was longer than the cap and was cut there. */
  truncated: boolean;
}

function decodedStream(response: IncomingMessage): Readable {
  const encoding = (response.headers["content-encoding"] ?? "").trim().toLowerCase();
  const decoder =
    encoding === "gzip" || encoding === "x-gzip"
      ? createGunzip()
      : encoding === "deflate"
        ? createInflate()
        : encoding === "br"
          ? createBrotliDecompress()
          : null;
  if (!decoder) return response;
  return pipeline(response, decoder, () => {
    // errors surface on `decoder`, which the reader listens to
  });
}

/**
 * Reads at most `maxBytes` (decompressed, so a compression bomb is cut too) and then destroys
 * the stream: a 10 GB or endless body costs no more than the cap.
 */
function readBody(response: IncomingMessage, maxBytes: number, signal: AbortSignal): Promise<Body> {
  const stream = addAbortSignal(signal, decodedStream(response));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      stream.removeAllListeners("data");
      stream.destroy();
      response.destroy(); // closes the connection: the server stops sending
    };
    stream.on("data", (chunk: Buffer) => {
      if (size + chunk.length > maxBytes) {
        chunks.push(chunk.subarray(0, maxBytes - size));
        stop();
        resolve({ bytes: Buffer.concat(chunks), truncated: true });
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    });
    stream.on("end", () => {
      stop();
      resolve({ bytes: Buffer.concat(chunks), truncated: false });
    });
    stream.on("error", (error) => {
      stop();
      reject(error);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The tool

/** The path robots.txt rules apply to: path plus query. */
function robotsPath(url: URL): string {
  return `${url.pathname}${url.search}`;
}

/** Throws a ToolFailure if robots.txt forbids fetching `url`, like mcp-server-fetch does. */
async function checkRobots(url: URL, ctx: FetchContext): Promise<void> {
  const robotsUrl = new URL("/robots.txt", url.origin).href;
  const skipHint = `To fetch it anyway, the operator can set ignore_robots_txt: true for the fetch server in ${CONFIG_FILE}.`;
  let opened: OpenedResponse;
  try {
    opened = await openUrl(new URL(robotsUrl), ctx);
  } catch (error) {
    if (error instanceof FetchRefusedError || error instanceof ToolFailure || ctx.signal.aborted) throw error;
    throw new ToolFailure(`Failed to fetch robots.txt ${robotsUrl} due to a connection issue (${errorText(error)})`);
  }
  const status = opened.response.statusCode ?? 0;
  if (status === 401 || status === 403 || status >= 500) {
    opened.response.destroy();
    throw new ToolFailure(
      `When fetching robots.txt (${robotsUrl}), received status ${status} so assuming that autonomous fetching is not allowed. ${skipHint}`,
    );
  }
  if (status >= 400) {
    opened.response.destroy(); // no robots.txt: everything is allowed
    return;
  }
  const body = await readBody(opened.response, MAX_ROBOTS_BYTES, ctx.signal);
  let verdict: RobotsVerdict;
  try {
    verdict = robotsVerdict(decodeBody(body.bytes, "utf-8", body.truncated), ctx.userAgent, robotsPath(url));
  } catch (error) {
    if (!(error instanceof RobotsTooComplex)) throw error;
    throw new ToolFailure(
      `The site's robots.txt (${robotsUrl}) is too complex to evaluate for this URL (more than ${MAX_ROBOTS_STEPS} steps), so assuming that autonomous fetching is not allowed. ${skipHint}`,
    );
  }
  if (verdict.allowed) return;
  const rule = verdict.rule ? ` (rule "${verdict.rule.allow ? "Allow" : "Disallow"}: ${verdict.rule.pattern}")` : "";
  throw new ToolFailure(
    `The site's robots.txt (${robotsUrl}) specifies that autonomous fetching of this page is not allowed${rule}.\n` +
      `<useragent>${ctx.userAgent}</useragent>\n<url>${url.href}</url>\n` +
      "The assistant must let the user know that it failed to view the page. The assistant may provide further guidance based on the above information. " +
      `The user can open the page themselves and paste its content. ${skipHint}`,
  );
}

/** Cuts the content to one page of `maxLength` characters, with mcp-server-fetch's hints. */
export function paginate(content: string, startIndex: number, maxLength: number): string {
  if (startIndex >= content.length) return "<error>No more content available.</error>";
  let end = Math.min(content.length, startIndex + maxLength);
  // Do not split a surrogate pair (an emoji, say) across two pages.
  const last = content.charCodeAt(end - 1);
  if (end < content.length && end - 1 > startIndex && last >= 0xd800 && last <= 0xdbff) end -= 1;
  const page = content.slice(startIndex, end);
  if (end >= content.length) return page;
  return `${page}\n\n<error>Content truncated. Call the fetch tool with a start_index of ${end} to get more content.</error>`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function formatSeconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

interface FetchArgs {
  url: string;
  max_length: number;
  start_index: number;
  raw: boolean;
}

async function fetchForModel(args: FetchArgs, options: FetchToolOptions, ctx: FetchContext): Promise<string> {
  if (args.url.length > MAX_URL_CHARS)
    throw new ToolFailure(`Invalid URL: it is ${args.url.length} characters long, the limit is ${MAX_URL_CHARS}`);
  let url: URL;
  try {
    url = new URL(args.url);
  } catch {
    throw new ToolFailure(`Invalid URL: ${args.url}`);
  }
  // Refuse before robots.txt is even asked for, with the page's URL in the message.
  const refused = checkUrlTarget(url, ctx.allow);
  if (refused) throw new FetchRefusedError(refused);
  if (!options.ignoreRobotsTxt) await checkRobots(url, ctx);

  const { url: finalUrl, response } = await openUrl(url, ctx);
  const status = response.statusCode ?? 0;
  if (status >= 400) {
    response.destroy();
    throw new ToolFailure(`Failed to fetch ${url.href} - status code ${status}`);
  }
  const contentType = response.headers["content-type"] ?? "";
  let kind = classifyContentType(contentType);
  const binaryRefusal = `Cannot fetch ${url.href}: its content type ${mediaType(contentType) || "(unknown)"} is binary, and this tool only returns text.`;
  if (kind === "binary") {
    response.destroy(); // refused on the header alone: the body is never downloaded
    throw new ToolFailure(binaryRefusal);
  }
  const body = await readBody(response, options.maxBytes, ctx.signal);
  if (kind === "unknown" && looksBinary(body.bytes)) throw new ToolFailure(binaryRefusal);
  const text = decodeBody(body.bytes, charsetOf(contentType, body.bytes, kind === "html"), body.truncated);
  // Like mcp-server-fetch, an untyped or oddly typed page that looks like HTML is treated as HTML.
  if (kind === "unknown" && looksLikeHtml(text)) kind = "html";

  let content: string;
  let prefix = "";
  let convertNote = "";
  if (args.raw) {
    content = text;
  } else if (kind === "html") {
    content = await ctx.markdown.convert(text, finalUrl.href, ctx.signal, ctx.owner);
    if (text.length > options.maxConvertChars) {
      convertNote = `\n\n<error>The page's markup was ${text.length} characters long; only the first ${options.maxConvertChars} were converted (max_convert_chars of the fetch server in ${CONFIG_FILE}), so the content ends early.</error>`;
    }
  } else {
    content = text;
    prefix = `Content type ${contentType || "(none)"} cannot be simplified to markdown, but here is the raw content:\n`;
  }
  const redirected = finalUrl.href === url.href ? "" : ` (redirected to ${finalUrl.href})`;
  const capNote = body.truncated
    ? `\n\n<error>The response was larger than ${options.maxBytes} bytes (max_fetch_bytes of the fetch server in ${CONFIG_FILE}); only that much was downloaded, so the content above ends early.</error>`
    : "";
  return `${prefix}Contents of ${url.href}${redirected}:\n${paginate(content, args.start_index, args.max_length)}${capNote}${convertNote}`;
}

function failureMessage(error: unknown, url: string, deadline: AbortSignal, timeoutMs: number): string {
  if (error instanceof FetchRefusedError || error instanceof ToolFailure) return error.message;
  if (deadline.aborted) {
    return `Failed to fetch ${url}: timed out after ${formatSeconds(timeoutMs)} s (the fetch server's limit for one fetch, redirects and robots.txt included: fetch_timeout_seconds in ${CONFIG_FILE})`;
  }
  if (error instanceof Error && error.name === "AbortError") return `Failed to fetch ${url}: the request was cancelled`;
  return `Failed to fetch ${url}: ${errorText(error)}`;
}

function toolError(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}

/**
 * The MCP server with the `fetch` tool. Throws at once on an invalid allow list or limits, so a
 * config mistake shows at start-up rather than on the first fetch.
 */
export function createFetchServer(options: FetchToolOptions): McpServer {
  const allow = parseAllowList(options.allowHosts);
  if (!(options.timeoutMs > 0)) throw new Error(`fetch: timeoutMs must be positive, got ${options.timeoutMs}`);
  if (!(options.maxBytes > 0)) throw new Error(`fetch: maxBytes must be positive, got ${options.maxBytes}`);

  const server = new McpServer({ name: "fetch", version: "1.0.0" });
  // One converter (one worker thread) for every call; it stops with the server, or when idle.
  const markdown = new MarkdownConverter({
    workers: options.convertWorkers,
    maxInputChars: options.maxConvertChars,
    budgetMs: options.convertBudgetMs,
    maxDepth: options.maxConvertDepth,
  });
  server.server.onclose = () => markdown.close();
  server.registerTool(
    "fetch",
    {
      description: TOOL_DESCRIPTION,
      inputSchema: {
        url: z.string().describe("URL to fetch"),
        max_length: z.number().int().gt(0).lt(1_000_000).default(5000).describe("Maximum number of characters to return."),
        start_index: z
          .number()
          .int()
          .min(0)
          .default(0)
          .describe(
            "On return output, start returning the output starting at this character index, useful if a previous fetch was truncated and more context is required.",
          ),
        raw: z.boolean().default(false).describe("Get the actual HTML content of the requested page, without simplification."),
      },
      annotations: { title: "Fetch a web page", readOnlyHint: true, openWorldHint: true },
    },
    async (args, extra): Promise<CallToolResult> => {
      const deadline = AbortSignal.timeout(options.timeoutMs);
      const owner = extra._meta?.[OWNER_META_KEY];
      const ctx: FetchContext = {
        allow,
        markdown,
        owner: typeof owner === "string" ? owner : "",
        userAgent: options.userAgent,
        // The client cancelling the call (extra.signal) stops the fetch too.
        signal: AbortSignal.any([deadline, extra.signal]),
      };
      try {
        const text = await fetchForModel(args, options, ctx);
        return { content: [{ type: "text", text }] };
      } catch (error) {
        return toolError(failureMessage(error, args.url, deadline, options.timeoutMs));
      }
    },
  );
  return server;
}
