// One server's tracer: its own TracerProvider, batch processor and OTLP/HTTP exporter, made by
// createAgentServer and shut down (flushed) by its close(). Nothing is registered globally (no
// global provider, context manager or propagator): spans are parented explicitly, through the
// TraceSpan handles the call sites pass along, so several servers in one process (tests,
// embedding) each keep their own traces. With tracing off every call returns NOOP_SPAN and costs
// one branch.
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { isRecord } from "../protocol.ts";
import { ERROR_TYPE } from "./names.ts";
import type { TraceSettings } from "./settings.ts";

export { SpanKind };
export type { Attributes };

/** The W3C trace context of a span, as it travels: MCP `_meta` (SEP-414), between instances. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/** A started span, or the no-op one: call sites never check whether tracing is on. */
export interface TraceSpan {
  readonly recording: boolean;
  /** This span's context for a remote child; undefined when tracing is off. */
  carrier(): TraceCarrier | undefined;
  set(attributes: Attributes): void;
  /** Marks the span failed: status ERROR with `message`, `error.type` = `type`. */
  fail(type: string, message?: string): void;
  /** Idempotent: the first end wins. */
  end(attributes?: Attributes): void;
}

export const NOOP_SPAN: TraceSpan = Object.freeze({
  recording: false,
  carrier: () => undefined,
  set: () => undefined,
  fail: () => undefined,
  end: () => undefined,
});

/** A parent: a span of ours, the carrier of a remote one, or none (a new trace). */
export type TraceParent = TraceSpan | TraceCarrier | undefined;

/** Where a piece of work puts its spans: the server's tracer and the parent span. */
export interface TraceScope {
  tracing: Tracing;
  parent: TraceParent;
}

const propagator = new W3CTraceContextPropagator();
/** Longest attribute value exported (captured content is cut there). */
const MAX_ATTRIBUTE_CHARS = 16 * 1024;
/** close() waits this long at most for the last spans to leave. */
const FLUSH_TIMEOUT_MS = 5000;

class LiveSpan implements TraceSpan {
  readonly recording = true;
  readonly context: Context;
  readonly #span: Span;
  #ended = false;

  constructor(span: Span, parent: Context) {
    this.#span = span;
    this.context = trace.setSpan(parent, span);
  }

  carrier(): TraceCarrier | undefined {
    const carrier: Record<string, string> = {};
    propagator.inject(this.context, carrier, defaultTextMapSetter);
    if (!carrier.traceparent) return undefined;
    return { traceparent: carrier.traceparent, ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}) };
  }

  set(attributes: Attributes): void {
    if (!this.#ended) this.#span.setAttributes(attributes);
  }

  fail(type: string, message?: string): void {
    if (this.#ended) return;
    this.#span.setAttribute(ERROR_TYPE, type);
    this.#span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
  }

  end(attributes?: Attributes): void {
    if (this.#ended) return;
    if (attributes) this.#span.setAttributes(attributes);
    this.#ended = true;
    this.#span.end();
  }
}

/** The context a parent gives, or ROOT_CONTEXT (a new trace) for none or a malformed carrier. */
function parentContext(parent: TraceParent): Context {
  if (!parent) return ROOT_CONTEXT;
  if (parent instanceof LiveSpan) return parent.context;
  if ("traceparent" in parent && typeof parent.traceparent === "string") {
    return propagator.extract(ROOT_CONTEXT, parent, defaultTextMapGetter);
  }
  return ROOT_CONTEXT;
}

export interface TracerOptions {
  settings: TraceSettings;
  /** Message text and tool arguments/results in spans (observability.capture_content). */
  captureContent: boolean;
  /** Applied to captured content before it is exported (the configured secrets). */
  redact: (text: string) => string;
  serviceVersion: string;
  /** service.instance.id: the cluster instance, when there is one. */
  instanceId?: string;
  /** For tests: where spans go instead of OTLP/HTTP. */
  exporter?: SpanExporter;
}

export class Tracing {
  readonly enabled: boolean;
  readonly captureContent: boolean;
  readonly #provider: BasicTracerProvider | undefined;
  readonly #tracer: Tracer | undefined;
  readonly #redact: (text: string) => string;
  #closing: Promise<void> | undefined;

  constructor(options: TracerOptions) {
    const { settings } = options;
    this.#redact = options.redact;
    this.enabled = settings.enabled || options.exporter !== undefined;
    this.captureContent = this.enabled && options.captureContent;
    if (!this.enabled) return;
    const exporter =
      options.exporter ??
      (settings.enabled
        ? new OTLPTraceExporter({ url: settings.url, headers: settings.headers, timeoutMillis: settings.timeoutMs })
        : undefined);
    if (!exporter) return;
    const resourceAttributes = settings.enabled ? settings.resource : {};
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        ...resourceAttributes,
        [ATTR_SERVICE_NAME]: settings.enabled ? settings.serviceName : "mcp-agent-ws",
        [ATTR_SERVICE_VERSION]: options.serviceVersion,
        ...(options.instanceId ? { [ATTR_SERVICE_INSTANCE_ID]: options.instanceId } : {}),
      }),
      spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE_CHARS },
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    this.#tracer = this.#provider.getTracer("mcp-agent-ws", options.serviceVersion);
  }

  /** Starts a span under `parent` (a new trace without one); `startTime` (epoch ms) when it began earlier. */
  start(name: string, kind: SpanKind, attributes: Attributes, parent?: TraceParent, startTime?: number): TraceSpan {
    if (!this.#tracer) return NOOP_SPAN;
    const context = parentContext(parent);
    return new LiveSpan(
      this.#tracer.startSpan(name, { kind, attributes, ...(startTime !== undefined ? { startTime } : {}) }, context),
      context,
    );
  }

  /**
   * Content for a span attribute, only when observability.capture_content is on: made lazily (the
   * text is never serialised otherwise), redacted, and cut to the attribute limit.
   */
  content(make: () => unknown): string | undefined {
    if (!this.captureContent) return undefined;
    const value = make();
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return this.#redact(text ?? "").slice(0, MAX_ATTRIBUTE_CHARS);
  }

  /** Exports what is left and stops; idempotent, and bounded by FLUSH_TIMEOUT_MS. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#provider) return;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
        timer.unref();
      });
      // An unreachable collector must not hold the server's close: its spans are dropped.
      await Promise.race([this.#provider.shutdown().catch(() => undefined), timeout]);
      clearTimeout(timer);
    })();
    return this.#closing;
  }
}

/** The `_meta` fields that carry a span's context to an MCP server (SEP-414), or none. */
export function traceMeta(span: TraceSpan | undefined): Record<string, string> | undefined {
  const carrier = span?.carrier();
  return carrier ? { ...carrier } : undefined;
}

/** A carrier read from outside (another instance's message): only well-formed strings pass. */
export function parseCarrier(value: unknown): TraceCarrier | undefined {
  if (!isRecord(value)) return undefined;
  const { traceparent, tracestate } = value;
  if (typeof traceparent !== "string" || !/^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/.test(traceparent)) return undefined;
  return { traceparent, ...(typeof tracestate === "string" && tracestate.length <= 512 ? { tracestate } : {}) };
}
