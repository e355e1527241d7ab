// Enterprise-managed authorization's first step (lib/oauth/cross-app-access.ts) against a real IdP
// on port 0: what the token exchange sends, the IdP found from its issuer, a refusal that says
// who refused and why; and the config keys it needs. (The whole flow: tests/e2e/conformance.test.ts.)
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { parseConfig, ConfigError } from "../../lib/config.ts";
import { CrossAppAccessError, ID_JAG_TYPE, jwtBearerRequest, requestIdJag } from "../../lib/oauth/cross-app-access.ts";

interface Seen {
  path: string;
  form: URLSearchParams;
  authorization: string | undefined;
}

const seen: Seen[] = [];
let refuse = false;

function body(request: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    request.on("data", (chunk: Buffer) => (text += chunk.toString()));
    request.on("end", () => resolve(text));
  });
}

const idp = createServer((request, response) => {
  void body(request).then((text) => {
    const base = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    if (request.url === "/.well-known/oauth-authorization-server") {
      response.writeHead(200, { "content-type": "application/json" });
      return response.end(
        JSON.stringify({
          issuer: base,
          authorization_endpoint: `${base}/authorize`,
          token_endpoint: `${base}/exchange`,
          response_types_supported: ["code"],
        }),
      );
    }
    seen.push({ path: request.url ?? "", form: new URLSearchParams(text), authorization: request.headers.authorization });
    response.writeHead(refuse ? 400 : 200, { "content-type": "application/json" });
    response.end(
      JSON.stringify(
        refuse
          ? { error: "invalid_grant", error_description: "the ID token has expired" }
          : { access_token: "the-id-jag", issued_token_type: ID_JAG_TYPE, token_type: "N_A" },
      ),
    );
  });
});
await new Promise<void>((resolve) => idp.listen(0, "127.0.0.1", resolve));
const BASE = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
after(() => idp.close());

const target = { audience: "https://as.example", resource: "https://mcp.example/mcp", scope: "read" };

describe("cross app access", () => {
  test("the ID token is exchanged for an ID-JAG (RFC 8693), as the IdP client with its secret", async () => {
    seen.length = 0;
    const settings = {
      idp_token_endpoint: `${BASE}/token`,
      idp_client_id: "agent",
      idp_client_secret: "s3cret:x",
      id_token: "the-id-token",
    };
    assert.equal(await requestIdJag(settings, target), "the-id-jag");
    const [request] = seen;
    assert.equal(request?.path, "/token");
    assert.deepEqual(Object.fromEntries(request?.form ?? []), {
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      requested_token_type: "urn:ietf:params:oauth:token-type:id-jag",
      subject_token: "the-id-token",
      subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
      audience: "https://as.example",
      resource: "https://mcp.example/mcp",
      scope: "read",
    });
    assert.equal(request?.authorization, `Basic ${Buffer.from("agent:s3cret%3Ax").toString("base64")}`);
    assert.deepEqual(Object.fromEntries(jwtBearerRequest("the-id-jag", "read")), {
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: "the-id-jag",
      scope: "read",
    });
  });

  test("without a token endpoint the IdP's metadata names it; a public client sends its client_id", async () => {
    seen.length = 0;
    await requestIdJag({ idp_issuer: BASE, idp_client_id: "agent", id_token: "t" }, target);
    assert.equal(seen[0]?.path, "/exchange");
    assert.equal(seen[0]?.form.get("client_id"), "agent");
    assert.equal(seen[0]?.authorization, undefined);
  });

  test("a refusal says which IdP refused and why", async () => {
    refuse = true;
    try {
      await assert.rejects(
        requestIdJag({ idp_token_endpoint: `${BASE}/token`, idp_client_id: "agent", id_token: "t" }, target),
        (error: unknown) =>
          error instanceof CrossAppAccessError &&
          error.message ===
            `the IdP ${BASE}/token refused to exchange the ID token for an ID-JAG: invalid_grant (the ID token has expired)`,
      );
    } finally {
      refuse = false;
    }
  });

  test("grant cross_app_access without its IdP is a config error naming the key", () => {
    const parse = (oauth: string) =>
      parseConfig(
        {
          file: "/cfg/mcp_agent.config.yaml",
          text: `mcp:\n  servers:\n    wiki:\n      transport: streamable_http\n      url: https://wiki.example/mcp\n      auth:\n        oauth:\n${oauth}`,
        },
        undefined,
        {},
        "/cfg",
      );
    assert.throws(
      () => parse("          grant: cross_app_access\n"),
      (error: unknown) => error instanceof ConfigError && /cross_app_access/.test(error.message),
    );
    assert.throws(
      () =>
        parse("          grant: cross_app_access\n          cross_app_access:\n            idp_client_id: a\n            id_token: t\n"),
      (error: unknown) => error instanceof ConfigError && /cross_app_access\.idp_token_endpoint/.test(error.message),
    );
    const config = parse(
      "          grant: cross_app_access\n          cross_app_access:\n            idp_issuer: https://idp.example\n            idp_client_id: a\n            id_token: the-id-token-value\n",
    );
    assert.equal(config.mcp.servers.wiki?.auth?.oauth?.cross_app_access?.idp_issuer, "https://idp.example");
    assert.ok(config.secretValues.includes("the-id-token-value"), "the ID token is redacted like every secret");
  });
});
