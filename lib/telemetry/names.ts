// Attribute names of the OpenTelemetry GenAI and MCP semantic conventions. They are still
// "incubating" in @opentelemetry/semantic-conventions, whose README asks users to copy such names
// rather than import the incubating entry point (it may change in a minor release): so here they are.
// https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/

export const GEN_AI_OPERATION_NAME = "gen_ai.operation.name";
export const GEN_AI_PROVIDER_NAME = "gen_ai.provider.name";
export const GEN_AI_AGENT_NAME = "gen_ai.agent.name";
export const GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id";
export const GEN_AI_REQUEST_MODEL = "gen_ai.request.model";
export const GEN_AI_REQUEST_STREAM = "gen_ai.request.stream";
export const GEN_AI_RESPONSE_MODEL = "gen_ai.response.model";
export const GEN_AI_RESPONSE_ID = "gen_ai.response.id";
export const GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons";
export const GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens";
export const GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens";
export const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens";
export const GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages";
export const GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages";
export const GEN_AI_TOOL_NAME = "gen_ai.tool.name";
export const GEN_AI_TOOL_TYPE = "gen_ai.tool.type";
export const GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id";
export const GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments";
export const GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result";
export const MCP_METHOD_NAME = "mcp.method.name";
export const MCP_SESSION_ID = "mcp.session.id";
export const USER_ID = "user.id";
export {
  ATTR_ERROR_TYPE as ERROR_TYPE,
  ATTR_SERVER_ADDRESS as SERVER_ADDRESS,
  ATTR_SERVER_PORT as SERVER_PORT,
} from "@opentelemetry/semantic-conventions";

// Ours, where no convention has a name.
export const TURN_ID = "mcp_agent.turn.id";
export const OUTCOME = "mcp_agent.outcome";
export const MCP_SERVER = "mcp_agent.mcp.server";
export const MCP_TRANSPORT = "mcp_agent.mcp.transport";
export const INSTANCE = "mcp_agent.instance";
