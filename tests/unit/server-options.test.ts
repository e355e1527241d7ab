// The server's command line (lib/cli/server-options.ts): flags, the environment, and usage errors;
// defaults come from the config schema, so an unset flag is left for the config to decide.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServerOptions, USAGE } from "../../lib/cli/server-options.ts";

test("flags win over HOST and PORT; unset ones are left to server.host and server.port", () => {
  const given = parseServerOptions(["--host", "0.0.0.0", "--port", "0", "--log-level", "warning"], { HOST: "::1", PORT: "9" });
  assert.deepEqual(given, {
    ok: true,
    options: { help: false, host: "0.0.0.0", port: 0, configPath: "mcp_agent.config.yaml", level: "warn" },
  });
  const fromEnv = parseServerOptions([], { HOST: "::1", PORT: "9000" });
  assert.deepEqual(fromEnv.ok && [fromEnv.options.host, fromEnv.options.port], ["::1", 9000]);
  const unset = parseServerOptions([], { HOST: "", PORT: "" });
  assert.deepEqual(unset.ok && [unset.options.host, unset.options.port], [undefined, undefined]);
});

test("usage errors name the flag and the value; the usage shows the schema's defaults", () => {
  assert.deepEqual(parseServerOptions(["--port", "http"], {}), { ok: false, error: '--port must be a number from 0 to 65535, got "http"' });
  assert.deepEqual(parseServerOptions([], { PORT: "70000" }), { ok: false, error: 'PORT must be a number from 0 to 65535, got "70000"' });
  const level = parseServerOptions(["--log-level", "loud"], {});
  assert.equal(level.ok, false);
  const unknown = parseServerOptions(["--nope"], {});
  assert.ok(!unknown.ok && unknown.error.includes(USAGE));
  assert.match(USAGE, /server\.host: 127\.0\.0\.1/);
  assert.match(USAGE, /server\.port: 8000/);
});
