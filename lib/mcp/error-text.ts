// Error texts of MCP calls as a person reads them: the SDK's "MCP error <code>:" prefix once (a
// server that wraps our own error would double it), and a network failure's cause with its URL
// instead of the bare "fetch failed".
const PREFIX = /^(MCP error -?\d+: )(?:MCP error -?\d+: )+/;

/** The text with the SDK's "MCP error <code>:" prefix at most once (an SDK server's tool error carries it twice). */
export function onePrefix(text: string): string {
  return text.replace(PREFIX, "$1");
}

export function errorText(error: unknown, url?: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const once = onePrefix(message);
  if (/^fetch failed$|: fetch failed$/.test(once)) {
    const cause = error instanceof Error ? causeOf(error.cause) : undefined;
    return `${once.replace(/fetch failed$/, `could not reach ${url ?? "the server"}`)}${cause ? `: ${cause}` : ""}`;
  }
  return once;
}

function causeOf(cause: unknown): string | undefined {
  if (!(cause instanceof Error)) return undefined;
  const code = "code" in cause && typeof cause.code === "string" ? cause.code : undefined;
  return code && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message;
}
