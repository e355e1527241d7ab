// GET /oauth/callback (the browser's return from the authorization server) and GET
// /oauth/client-metadata.json (our client ID metadata document, when server.public_url is https).
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendError, sendJson } from "../http/routes.ts";
import { CALLBACK_PATH, CLIENT_METADATA_PATH, type OAuthManager } from "./oauth.ts";

export class OAuthRoutes {
  readonly #oauth: OAuthManager;

  constructor(oauth: OAuthManager) {
    this.#oauth = oauth;
  }

  /** True when the path is one of ours (answered here). */
  handle(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
    if (pathname !== CALLBACK_PATH && pathname !== CLIENT_METADATA_PATH) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendError(
        res,
        { status: 405, code: "method_not_allowed", error: `method ${req.method} is not allowed on ${pathname}; use GET` },
        { allow: "GET, HEAD" },
      );
      return true;
    }
    if (pathname === CLIENT_METADATA_PATH) {
      const document = this.#oauth.clientMetadataDocument();
      if (!document)
        sendError(res, { status: 404, code: "not_found", error: "no client ID metadata document: server.public_url is not an https URL" });
      else sendJson(res, 200, document, { "cache-control": "public, max-age=3600" });
      return true;
    }
    const query = new URL(req.url ?? "/", "http://callback.invalid").searchParams;
    void this.#oauth.complete(query).then(
      (outcome) =>
        outcome.ok
          ? page(res, 200, `Signed in to ${outcome.server}`, `Its tools are ready in your chat. You can close this tab.`)
          : page(res, outcome.status, "Sign-in failed", outcome.error),
      (error: unknown) => page(res, 500, "Sign-in failed", error instanceof Error ? error.message : String(error)),
    );
    return true;
  }
}

/** A page without scripts: the browser lands here after signing in. */
function page(res: ServerResponse, status: number, title: string, text: string): void {
  const body = `<!doctype html><meta charset="utf-8"><title>${escape(title)}</title><h1>${escape(title)}</h1><p>${escape(text)}</p>\n`;
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
