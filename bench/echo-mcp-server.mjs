// The bench's MCP server: the `echo` tool of tests/fixtures/test-mcp-server.mjs (same name, input
// schema and result), over stdio, in plain Node without the MCP SDK. Why not the fixture itself:
// the turn benchmark starts one per user, 603 in all, and on the 2-core bench machine 50 fixtures
// take ~6.5 s to start (loading the SDK and zod) against ~1.1 s for 50 of these: the fixture would
// add over a minute to the run. Our server and the bare baseline both talk to this same program.
import { createInterface } from "node:readline";

const ECHO = {
  name: "echo",
  description: "Echoes its text",
  inputSchema: {
    $schema: "http://json-schema.org/draft-07/schema#",
    type: "object",
    properties: { text: { type: "string" } },
    required: ["text"],
    additionalProperties: false,
  },
};

const send = (message) => process.stdout.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);

function answer(request) {
  switch (request.method) {
    case "initialize":
      return {
        protocolVersion: request.params?.protocolVersion,
        capabilities: { tools: { listChanged: false } },
        serverInfo: { name: "bench-echo", version: "1.0.0" },
      };
    case "ping":
      return {};
    case "tools/list":
      return { tools: [ECHO] };
    case "tools/call": {
      const { name, arguments: args } = request.params ?? {};
      if (name !== "echo" || typeof args?.text !== "string") {
        return { content: [{ type: "text", text: `unknown tool or bad arguments: ${name}` }], isError: true };
      }
      return { content: [{ type: "text", text: `echo:${args.text}` }] };
    }
    default:
      return undefined;
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim() === "") return;
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return send({ id: null, error: { code: -32700, message: "Parse error" } });
  }
  if (request.id === undefined) return; // a notification (initialized, cancelled): nothing to answer
  const result = answer(request);
  if (result === undefined) send({ id: request.id, error: { code: -32601, message: `Method not found: ${request.method}` } });
  else send({ id: request.id, result });
});
// A well-behaved stdio server leaves when its client closes stdin.
lines.on("close", () => process.exit(0));
