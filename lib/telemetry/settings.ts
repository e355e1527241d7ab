// What the standard OTEL_* environment variables ask of the tracer, decided once from the
// environment given to the server (not read at import time, and not from process.env directly,
// so tests and embedders choose). Traces are OFF unless asked for: an OTLP endpoint set, or
// OTEL_TRACES_EXPORTER=otlp (the SDK's own default is "otlp", ours is none: a server that
// nobody pointed at a collector must not try to reach localhost:4318 on every turn).
// https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/

export type Env = Readonly<Record<string, string | undefined>>;

export type TraceSettings =
  | { enabled: false; warnings: string[] }
  | {
      enabled: true;
      /** The full OTLP/HTTP traces URL (…/v1/traces). */
      url: string;
      headers: Record<string, string>;
      timeoutMs: number;
      serviceName: string;
      /** From OTEL_RESOURCE_ATTRIBUTES; service.name comes from OTEL_SERVICE_NAME when set. */
      resource: Record<string, string>;
      warnings: string[];
    };

const DEFAULT_ENDPOINT = "http://localhost:4318";
const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_SERVICE_NAME = "mcp-agent-ws";

function value(env: Env, name: string): string | undefined {
  const found = env[name]?.trim();
  return found ? found : undefined;
}

/** `key1=value1,key2=value2`, values percent-encoded (W3C Baggage octets), as both variables use. */
export function parseKeyValueList(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    let decoded = part.slice(eq + 1).trim();
    try {
      decoded = decodeURIComponent(decoded);
    } catch {
      // A stray % is kept as written: the spec asks to keep going, not to fail the start.
    }
    if (key) out[key] = decoded;
  }
  return out;
}

export function traceSettingsFromEnv(env: Env): TraceSettings {
  const warnings: string[] = [];
  if (value(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return { enabled: false, warnings };
  const exporters = (value(env, "OTEL_TRACES_EXPORTER") ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  if (exporters.includes("none")) return { enabled: false, warnings };
  for (const name of exporters) {
    if (name !== "otlp") warnings.push(`OTEL_TRACES_EXPORTER=${name} is not supported here (only otlp, over HTTP): ignored`);
  }
  const tracesEndpoint = value(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const endpoint = value(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (!exporters.includes("otlp") && !tracesEndpoint && !endpoint) return { enabled: false, warnings };
  const protocol = value(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? value(env, "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol && protocol !== "http/json" && protocol !== "http/protobuf") {
    warnings.push(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported here: spans go as OTLP/HTTP JSON`);
  }
  // The signal-specific endpoint is used as given; the general one gets the signal's path.
  const url = tracesEndpoint ?? `${(endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "")}/v1/traces`;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    warnings.push(`OTLP endpoint "${url}" is not an http(s) URL: traces are off`);
    return { enabled: false, warnings };
  }
  const timeoutText = value(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? value(env, "OTEL_EXPORTER_OTLP_TIMEOUT");
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeoutText !== undefined) {
    const parsed = Number(timeoutText);
    if (Number.isFinite(parsed) && parsed > 0) timeoutMs = parsed;
    else warnings.push(`OTEL_EXPORTER_OTLP_TIMEOUT=${timeoutText} is not a positive number of milliseconds: ${DEFAULT_TIMEOUT_MS} used`);
  }
  const resource = parseKeyValueList(value(env, "OTEL_RESOURCE_ATTRIBUTES"));
  return {
    enabled: true,
    url,
    headers: {
      ...parseKeyValueList(value(env, "OTEL_EXPORTER_OTLP_HEADERS")),
      ...parseKeyValueList(value(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS")),
    },
    timeoutMs,
    serviceName: value(env, "OTEL_SERVICE_NAME") ?? resource["service.name"] ?? DEFAULT_SERVICE_NAME,
    resource,
    warnings,
  };
}
