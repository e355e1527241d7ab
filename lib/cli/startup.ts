// The command line's words around a start: a log that a failed start can silence, why a listen
// failed, and the warnings printed under the banner.
import type { Config } from "../config.ts";
import { isLoopbackBind } from "../http/access.ts";
import type { Logger } from "../log.ts";

/**
 * A server that never listened has nothing to log: its failed start is one line on stderr, not
 * that line plus a `server_stop` from the clean-up. mute() silences the returned log.
 */
export function mutableLogger(log: Logger): { log: Logger; mute(): void } {
  let muted = false;
  return {
    log: {
      debug: (event, fields) => muted || log.debug(event, fields),
      info: (event, fields) => muted || log.info(event, fields),
      warn: (event, fields) => muted || log.warn(event, fields),
      error: (event, fields) => muted || log.error(event, fields),
      filePath: log.filePath,
      close: () => log.close(),
    },
    mute: () => {
      muted = true;
    },
  };
}

/** Why listen() failed, in words. */
export function listenFailure(error: unknown): string {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  return code === "EADDRINUSE"
    ? "the port is already in use"
    : code === "EADDRNOTAVAIL"
      ? "that address is not on this machine"
      : (error as Error).message;
}

/** The warnings under the banner: no token on a reachable address, no API key. */
export function printStartWarnings(config: Config, host: string, log: Logger): void {
  if (!isLoopbackBind(host) && !config.server.auth_token && config.server.auth.mode === "token") {
    console.log(
      `Warning: listening on ${host}, reachable from other machines, without a token: anyone who can reach it gets an agent with your API key. Set server.auth_token (or MCP_AGENT_AUTH_TOKEN).`,
    );
    log.warn("no_auth_token", { host });
  }
  if (!config.openai.api_key) {
    console.log(
      "No OpenAI API key is set: chat messages will get an error until you set openai.api_key in mcp_agent.secrets.yaml or OPENAI_API_KEY.",
    );
  }
}
