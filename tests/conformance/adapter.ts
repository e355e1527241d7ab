// The conformance suite's client command: `adapter.ts <server-url>`, with the scenario in
// MCP_CONFORMANCE_SCENARIO and its data (client credentials) in MCP_CONFORMANCE_CONTEXT. It drives
// OUR connection code (lib/mcp/hub.ts connectionFor + McpConnection) with OUR OAuth provider
// (lib/oauth), and plays the user's browser: it follows the authorization URL the provider hands
// out, and gives the redirect's query to the same completion that GET /oauth/callback runs.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { configDefaults, mcpServerDefaults, type Config, type McpServerConfig } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import { connectionFor } from "../../lib/mcp/hub-factory.ts";
import { OAuthManager } from "../../lib/oauth/oauth.ts";
import { SealedRecords } from "../../lib/oauth/records.ts";
import { Vault } from "../../lib/oauth/vault.ts";
import { isRecord } from "../../lib/protocol.ts";
import { MemoryStore } from "../../lib/store/store.ts";

const serverUrl = process.argv.at(-1) ?? "";
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? "";
const context: unknown = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? "{}");
const text = (value: unknown) => (typeof value === "string" ? value : undefined);

const log: Logger = {
  debug: () => undefined,
  info: (event, fields) => console.error(event, JSON.stringify(fields ?? {})),
  warn: (event, fields) => console.error(event, JSON.stringify(fields ?? {})),
  error: (event, fields) => console.error(event, JSON.stringify(fields ?? {})),
  filePath: undefined,
  close: () => Promise.resolve(),
};

const clientId = isRecord(context) ? text(context.client_id) : undefined;
const clientSecret = isRecord(context) ? text(context.client_secret) : undefined;
const privateKey = isRecord(context) ? text(context.private_key_pem) : undefined;
const algorithm = isRecord(context) ? text(context.signing_algorithm) : undefined;
const credentials = scenario.startsWith("auth/client-credentials");
// Enterprise-managed authorization (SEP-990): the scenario hands over the user's IdP ID token and the IdP's token endpoint.
const idToken = isRecord(context) ? text(context.idp_id_token) : undefined;
const idpClientId = isRecord(context) ? text(context.idp_client_id) : undefined;
const idpTokenEndpoint = isRecord(context) ? text(context.idp_token_endpoint) : undefined;
const idpIssuer = isRecord(context) ? text(context.idp_issuer) : undefined;
const crossAppAccess =
  idToken && idpClientId
    ? {
        id_token: idToken,
        idp_client_id: idpClientId,
        ...(idpTokenEndpoint ? { idp_token_endpoint: idpTokenEndpoint } : idpIssuer ? { idp_issuer: idpIssuer } : {}),
      }
    : undefined;
const entry: McpServerConfig = {
  ...mcpServerDefaults(),
  transport: "streamable_http",
  url: serverUrl,
  read_timeout_seconds: 20,
  auth: {
    oauth: {
      enabled: true,
      scopes: [],
      grant: crossAppAccess ? "cross_app_access" : credentials ? "client_credentials" : "authorization_code",
      ...(crossAppAccess ? { cross_app_access: crossAppAccess } : {}),
      ...(clientId ? { client_id: clientId } : {}),
      ...(clientSecret ? { client_secret: clientSecret } : {}),
      ...(privateKey ? { private_key: privateKey } : {}),
      signing_algorithm: algorithm ?? "RS256",
    },
  },
};
const defaults = configDefaults();
const config: Config = {
  ...defaults,
  // An https public_url: we are our own client ID (client ID metadata document) where the server supports it.
  server: { ...defaults.server, public_url: "https://conformance-test.local" },
  mcp: { ...defaults.mcp, servers: { conformance: entry } },
  // The suite's own client ID metadata document URL (its basic-cimd scenario checks for it).
  oauth: { ...defaults.oauth, client_metadata_url: "https://conformance-test.local/client-metadata.json" },
  azure: undefined,
  configDir: mkdtempSync(path.join(tmpdir(), "mcp-conformance-")),
  logLevel: "info",
  secretValues: [],
};

let completed: () => void = () => undefined;
let authorizations = 0;
const oauth: OAuthManager = new OAuthManager({
  config,
  records: new SealedRecords(new MemoryStore(), () => new Vault(randomBytes(32))),
  log,
  baseUrl: () => "https://conformance-test.local",
  entryFor: (_userId, server) => Promise.resolve(config.mcp.servers[server]),
  events: {
    authRequired: (_userId, _server, url) => {
      authorizations++;
      void browse(url);
    },
    authCompleted: () => completed(),
  },
});

/** The user's browser: the test authorization server approves at once and redirects to our callback. */
async function browse(url: string): Promise<void> {
  const answer = await fetch(url, { redirect: "manual" });
  const location = answer.headers.get("location");
  if (!location) return console.error(`the authorization endpoint answered ${answer.status} without a redirect`);
  const outcome = await oauth.complete(new URL(location).searchParams);
  if (!outcome.ok) console.error(`callback refused: ${outcome.error}`);
}

function authorized(): Promise<void> {
  return new Promise((resolve) => (completed = resolve));
}

const auth = oauth.remoteAuth("conformance-user", "conformance", entry);
const connection = connectionFor(
  "conformance",
  entry,
  config.configDir,
  {
    log,
    limits: { maxToolResultChars: 100_000, maxToolImageBytes: 1 << 20, maxRestarts: 1 },
    packageDirs: [],
    configDir: config.configDir,
  },
  {},
  undefined,
  "conformance-user",
  auth ? { auth } : {},
);

// At most three sign-ins (a step-up asks again): a server that always refuses is not looped on.
const MAX_AUTHORIZATIONS = 3;
let waiting = authorized();
await connection.start();
while (connection.needsAuth && authorizations < MAX_AUTHORIZATIONS) {
  await waiting;
  waiting = authorized();
  await connection.retry();
}
if (connection.state !== "ready") {
  console.error(`not connected: ${connection.info().error ?? connection.state}`);
  await connection.close();
  process.exit(1);
}
for (const tool of connection.tools) {
  let outcome = await connection.callTool(tool.name, {});
  // A step-up (403 insufficient_scope) needs the user again; the call is then made once more.
  while (connection.needsAuth && authorizations < MAX_AUTHORIZATIONS) {
    await waiting;
    waiting = authorized();
    await connection.retry();
    outcome = await connection.callTool(tool.name, {});
  }
  console.log(`${tool.name}: ${outcome.ok ? "ok" : "failed"} ${outcome.text.slice(0, 200)}`);
}
await connection.close();
process.exit(0);
