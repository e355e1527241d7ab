// The mapping between MCP tools and OpenAI function tools: pure functions, tested without a network.
import { createHash } from "node:crypto";
import type { ToolCatalog, ToolRoute } from "../agent/types.ts";
import { isRecord } from "../protocol.ts";

/** What an MCP server says about one of its tools (the parts the model needs). */
export interface McpToolInfo {
  name: string;
  description?: string;
  inputSchema: Record<string, unknown>;
  /** MCP tasks: a `required` tool runs only as a task (the connection does that through the SDK). */
  taskSupport?: "required" | "optional" | "forbidden";
}

export interface ServerTools {
  server: string;
  tools: McpToolInfo[];
}

// OpenAI accepts ^[a-zA-Z0-9_-]{1,64}$ for function names.
const MAX_NAME = 64;
const VALID_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

/**
 * `<server>_<tool>` as in the original, made valid for OpenAI. A name that had to be changed, or
 * that collides with one already taken, gets a hash of the real (server, tool) pair, so the result
 * depends only on the inputs and never maps two tools to one name.
 */
export function toolNameFor(server: string, tool: string, taken: ReadonlySet<string>): string {
  const plain = `${server}_${tool}`;
  if (VALID_NAME.test(plain) && !taken.has(plain)) return plain;
  const cleaned = plain.replace(/[^a-zA-Z0-9_-]/g, "_");
  const hash = shortHash(`${server}\u0000${tool}`);
  let candidate = `${cleaned.slice(0, MAX_NAME - hash.length - 1)}_${hash}`;
  for (let n = 2; taken.has(candidate); n++) {
    const suffix = `${hash}${n}`;
    candidate = `${cleaned.slice(0, MAX_NAME - suffix.length - 1)}_${suffix}`;
  }
  return candidate;
}

/** Every tool of every server, in server order, as OpenAI tools plus the route back. */
export function buildToolCatalog(servers: readonly ServerTools[]): ToolCatalog {
  const routes = new Map<string, ToolRoute>();
  const tools: ToolCatalog["tools"] = [];
  for (const { server, tools: serverTools } of servers) {
    for (const tool of serverTools) {
      const name = toolNameFor(server, tool.name, new Set(routes.keys()));
      routes.set(name, { server, tool: tool.name });
      const parameters = isRecord(tool.inputSchema) ? tool.inputSchema : { type: "object", properties: {} };
      tools.push({
        type: "function",
        function: { name, description: tool.description ?? "", parameters },
      });
    }
  }
  return { tools, routes };
}
