// A server's traces from its environment: off unless the OTEL_* variables ask for them; a setting
// that cannot be used is a warning in the log, not a failed start.
import type { Logger } from "../log.ts";
import { traceSettingsFromEnv, type Env, type TraceSettings } from "./settings.ts";
import { Tracing, type TracerOptions } from "./tracer.ts";

export function createTracing(options: { env: Env; log: Logger } & Omit<TracerOptions, "settings" | "exporter">): {
  tracing: Tracing;
  settings: TraceSettings;
} {
  const { env, log, ...rest } = options;
  const settings = traceSettingsFromEnv(env);
  for (const warning of settings.warnings) log.warn("otel_setting_ignored", { warning });
  return { tracing: new Tracing({ settings, ...rest }), settings };
}
