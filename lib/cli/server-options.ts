// `npm start -- [options]`: the server's command line, parsed into settings or a usage error.
import { parseArgs } from "node:util";
import { CONFIG_FILE, configDefaults, type LogLevel } from "../config.ts";

const SERVER_DEFAULTS = configDefaults().server;

export const USAGE = `Usage: npm start -- [options]

Options:
  --host HOST         address to listen on (default: $HOST, else server.host: ${SERVER_DEFAULTS.host})
  --port PORT         port to listen on, 0 picks a free one (default: $PORT, else server.port: ${SERVER_DEFAULTS.port})
  --config FILE       config file (default: ./${CONFIG_FILE}); secrets are read from
                      mcp_agent.secrets.yaml in the same folder
  --log-level LEVEL   debug, info, warning or error (default: the config's logger.level)
  -h, --help          show this help`;

const LOG_LEVELS: Record<string, LogLevel> = { debug: "debug", info: "info", warning: "warn", warn: "warn", error: "error" };

export interface ServerOptions {
  help: boolean;
  /** Undefined: the config's server.host. */
  host: string | undefined;
  /** Undefined: the config's server.port. */
  port: number | undefined;
  configPath: string;
  level: LogLevel | undefined;
}

/** Pure: argv and the environment in, the options or a message for stderr (exit code 2) out. */
export function parseServerOptions(
  argv: string[],
  env: NodeJS.ProcessEnv,
): { ok: true; options: ServerOptions } | { ok: false; error: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        config: { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    return { ok: false, error: `${(error as Error).message}\n\n${USAGE}` };
  }
  // An empty HOST or PORT in the environment counts as unset.
  const portText = values.port ?? (env.PORT || undefined);
  const port = portText === undefined ? undefined : Number(portText);
  if (portText !== undefined && (!/^\d+$/.test(portText) || Number(portText) > 65535)) {
    const source = values.port !== undefined ? "--port" : "PORT";
    return { ok: false, error: `${source} must be a number from 0 to 65535, got "${portText}"` };
  }
  const levelText = values["log-level"];
  const level = levelText === undefined ? undefined : LOG_LEVELS[levelText.toLowerCase()];
  if (levelText !== undefined && !level) {
    return { ok: false, error: `--log-level must be one of debug, info, warning, error; got "${levelText}"` };
  }
  return {
    ok: true,
    options: {
      help: values.help ?? false,
      host: values.host ?? (env.HOST || undefined),
      port,
      configPath: values.config ?? CONFIG_FILE,
      level,
    },
  };
}
