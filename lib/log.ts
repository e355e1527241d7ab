// Structured JSON-lines logging, following the config's `logger` section.
// Console lines go to stderr so stdout stays clean for the URL banner and for scripts.
import { randomUUID } from "node:crypto";
import type { Config, LogLevel } from "./config.ts";
import { resolveConfigPath } from "./config.ts";
import { LogFile } from "./log-file.ts";
import { Redactor } from "./secrets/redactor.ts";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** The file the log is written to, when the file transport is on. */
  readonly filePath: string | undefined;
  close(): Promise<void>;
}

export interface LoggerOptions {
  level: LogLevel;
  console: boolean;
  filePath?: string;
  /** Values that must never appear in a log line (API keys, tokens). */
  secrets: string[];
  /** The server's redactor (secrets and configured credentials); when given, it is used instead of `secrets`. */
  redactor?: Redactor;
  /** Where console lines go; stderr by default. */
  consoleStream?: NodeJS.WritableStream;
  /** After a log file write fails, least time between attempts to open it again (default 1 s). */
  fileRetryMs?: number;
}

export { Redactor } from "./secrets/redactor.ts";

/** Replaces every secret value in a string by a fixed marker. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join("[REDACTED]");
  }
  return out;
}

export function createLogger(options: LoggerOptions): Logger {
  const threshold = LEVELS[options.level];
  // A full disk must not take the server down: LogFile reports once on the console and resumes when it can.
  let file: LogFile | undefined = options.filePath
    ? new LogFile(options.filePath, {
        report: (text) => (options.consoleStream ?? process.stderr).write(text),
        retryMs: options.fileRetryMs,
      })
    : undefined;
  const consoleStream = options.console ? (options.consoleStream ?? process.stderr) : undefined;
  const { redactor } = options;
  const clean = redactor ? (text: string) => redactor.redactSecrets(text) : (text: string) => redact(text, options.secrets);
  const write = (level: LogLevel, event: string, fields: LogFields = {}) => {
    if (LEVELS[level] < threshold) return;
    // Secrets come out of every string before encoding (a key holding `"` or `\` is escaped in
    // the JSON and would slip past a search of the line), and out of the whole line after.
    const replacer = (key: string, value: unknown): unknown => {
      const plain = errorReplacer(key, value);
      return typeof plain === "string" ? clean(plain) : plain;
    };
    const line = clean(JSON.stringify({ timestamp: new Date().toISOString(), level, event, ...fields }, replacer)) + "\n";
    consoleStream?.write(line);
    file?.write(line);
  };
  return {
    debug: (event, fields) => write("debug", event, fields),
    info: (event, fields) => write("info", event, fields),
    warn: (event, fields) => write("warn", event, fields),
    error: (event, fields) => write("error", event, fields),
    filePath: options.filePath,
    close: () =>
      new Promise<void>((resolve) => {
        const stream = file;
        file = undefined;
        if (!stream) return resolve();
        void stream.close().then(resolve);
      }),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/** strftime subset used by mcp-agent's `timestamp_format`. */
function formatTimestamp(date: Date, format: string): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  const parts: Record<string, string> = {
    Y: String(date.getFullYear()),
    m: pad(date.getMonth() + 1),
    d: pad(date.getDate()),
    H: pad(date.getHours()),
    M: pad(date.getMinutes()),
    S: pad(date.getSeconds()),
  };
  return format.replace(/%([YmdHMS%])/g, (_match, code: string) => (code === "%" ? "%" : (parts[code] ?? "")));
}

/** The logger the config asks for. */
export function loggerFromConfig(config: Config, overrides: { level?: LogLevel; consoleStream?: NodeJS.WritableStream } = {}): Logger {
  const { logger } = config;
  const transports = new Set(logger.transports.length > 0 ? logger.transports : [logger.type ?? "console"]);
  let filePath: string | undefined;
  if (transports.has("file")) {
    const settings = logger.path_settings;
    const uniqueId = settings.unique_id === "session_id" ? randomUUID() : formatTimestamp(new Date(), settings.timestamp_format);
    filePath = resolveConfigPath(config, logger.path ?? settings.path_pattern.replace("{unique_id}", uniqueId));
  }
  return createLogger({
    level: overrides.level ?? config.logLevel,
    console: transports.has("console"),
    filePath,
    secrets: config.secretValues,
    redactor: Redactor.fromConfig(config),
    consoleStream: overrides.consoleStream,
  });
}

/**
 * The server's view of a logger it was given: every field passes the server's redactor before
 * the logger sees it, whatever that logger was built with (a test's, an embedder's).
 */
export function redactingLogger(log: Logger, redactor: Redactor): Logger {
  const clean = (fields: LogFields | undefined) => (fields ? redactor.redactSecretsIn(fields) : fields);
  return {
    debug: (event, fields) => log.debug(event, clean(fields)),
    info: (event, fields) => log.info(event, clean(fields)),
    warn: (event, fields) => log.warn(event, clean(fields)),
    error: (event, fields) => log.error(event, clean(fields)),
    get filePath() {
      return log.filePath;
    },
    close: () => log.close(),
  };
}
