// The page's files (index.html at the top of the repository, the rest in page/) and its two libraries (from node_modules), each under a fixed URL path:
// nothing from the URL reaches the filesystem. Read once, then served from memory with an ETag.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/** The page's modules (page/*.js); index.html loads app.js, which imports the rest. */
export const PAGE_MODULES = [
  "app.js",
  "approval-text.js",
  "approvals.js",
  "attachments.js",
  "connection.js",
  "controls.js",
  "conversation.js",
  "dom.js",
  "elicitation-fields.js",
  "elicitation.js",
  "file-refs.js",
  "files.js",
  "format.js",
  "frames.js",
  "reconnect.js",
  "refusals.js",
  "render.js",
  "servers.js",
  "thinking.js",
  "turns.js",
] as const;

const JAVASCRIPT = "text/javascript; charset=utf-8";

/** URL path → the file (relative to the repository's root) and its type. */
const PAGE_FILES = new Map<string, { file: string; type: string }>([
  ["/", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/page/style.css", { file: "page/style.css", type: "text/css; charset=utf-8" }],
  ...PAGE_MODULES.map((name) => [`/page/${name}`, { file: `page/${name}`, type: JAVASCRIPT }] as const),
]);

/** URL path → the package and the candidates for its browser build. */
const VENDOR = new Map<string, { pkg: string; files: string[] }>([
  ["/vendor/marked.js", { pkg: "marked", files: ["lib/marked.umd.js", "marked.min.js"] }],
  ["/vendor/purify.js", { pkg: "dompurify", files: ["dist/purify.min.js", "dist/purify.js"] }],
]);

/** Every script the page may run, by URL path: its two libraries, then its modules. */
export const PAGE_SCRIPTS: readonly string[] = [...VENDOR.keys(), ...PAGE_MODULES.map((name) => `/page/${name}`)];

/**
 * The page's Content-Security-Policy, as two policies: a browser loads a resource only if both
 * allow it. The first allows scripts and styles from this server ('self'); the second only at
 * the page's own paths (on any host: the first has already said which). So nothing else this
 * server serves, least of all a file a user or the agent wrote under /files, can run as a script
 * or apply as a style on the page's origin; there are no inline blocks, so no hashes; an injected
 * <script> or onerror= would not run even if Markdown sanitising ever let markup through; no
 * remote image can carry data out.
 */
export const PAGE_POLICIES: readonly string[] = [
  [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    // blob: for the Files panel's image previews, fetched with the user's token and shown from memory.
    "img-src 'self' data: blob:",
    "connect-src 'self' ws: wss:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  [`script-src ${PAGE_SCRIPTS.map((script) => `*:*${script}`).join(" ")}`, "style-src *:*/page/style.css"].join("; "),
];

interface Served {
  body: Buffer;
  etag: string;
  type: string;
}

const requireFrom = createRequire(import.meta.url);

/** The installed package's folder (its exports may hide package.json and the browser build). */
function packageRoot(name: string): string {
  let dir = path.dirname(requireFrom.resolve(name));
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === name) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json of ${name} above ${requireFrom.resolve(name)}`);
    dir = up;
  }
}

function served(body: Buffer, type: string): Served {
  return { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` };
}

/** Answers with the body, or 304 when the client's copy is current; HEAD gets the headers only. */
function answer(req: IncomingMessage, res: ServerResponse, file: Served, headers: Record<string, string | readonly string[]>): void {
  const all = { "content-type": file.type, etag: file.etag, "x-content-type-options": "nosniff", ...headers };
  if (req.headers["if-none-match"] === file.etag) {
    res.writeHead(304, all);
    return void res.end();
  }
  res.writeHead(200, { ...all, "content-length": file.body.length });
  res.end(req.method === "HEAD" ? undefined : file.body);
}

/** Whether the pathname is one of the fixed ones (index.html at "/", the page's files, /vendor/*). */
export function servesPath(pathname: string): boolean {
  return PAGE_FILES.has(pathname) || VENDOR.has(pathname);
}

export class StaticFiles {
  readonly #rootDir: string;
  readonly #cache = new Map<string, Served>();

  /** `rootDir`: the folder of index.html and of page/ (style.css and the modules): the repository's root. */
  constructor(rootDir: string) {
    this.#rootDir = rootDir;
  }

  /** For a pathname servesPath() accepted. */
  serve(req: IncomingMessage, res: ServerResponse, pathname: string, notFound: (error: string) => void): void {
    const page = PAGE_FILES.get(pathname);
    if (page) {
      const file = this.#read(pathname, () => served(readFileSync(path.join(this.#rootDir, page.file)), page.type));
      if (!file) return notFound(`the page's ${page.file} is missing from ${this.#rootDir}`);
      // no-cache: the browser asks again (a 304 when unchanged), so a new version never mixes with old modules.
      const policy: Record<string, string | readonly string[]> =
        pathname === "/" ? { "content-security-policy": PAGE_POLICIES, "referrer-policy": "no-referrer" } : {};
      return answer(req, res, file, { "cache-control": "no-cache", ...policy });
    }
    const vendor = VENDOR.get(pathname);
    if (!vendor) return notFound(`not found: ${pathname}`);
    const file = this.#read(pathname, () => {
      const root = packageRoot(vendor.pkg);
      const found = vendor.files.map((name) => path.join(root, name)).find((candidate) => existsSync(candidate));
      if (!found) throw new Error(`no browser build of ${vendor.pkg} in ${root}`);
      // The source map is not served; drop the comment so devtools do not ask for it.
      const text = readFileSync(found, "utf8").replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
      return served(Buffer.from(text), "application/javascript; charset=utf-8");
    });
    if (!file) return notFound(`${vendor.pkg} is not installed: run npm install`);
    answer(req, res, file, { "cache-control": "public, max-age=86400" });
  }

  /** A file read once; undefined when it cannot be read (the caller says so; the next request tries again). */
  #read(pathname: string, load: () => Served): Served | undefined {
    const cached = this.#cache.get(pathname);
    if (cached) return cached;
    try {
      const file = load();
      this.#cache.set(pathname, file);
      return file;
    } catch {
      return undefined;
    }
  }
}
