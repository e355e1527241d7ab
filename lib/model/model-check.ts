// At start, the endpoint's model list (GET /models) is read once, when it answers: a model name
// it does not list is reported clearly in the log, before the first turn fails on it.
import type OpenAI from "openai";

/** Waits this long for the list; an endpoint that is slow or absent is not checked. */
export const MODEL_CHECK_TIMEOUT_MS = 5000;
/** Names the warning lists of the models the endpoint has. */
const LISTED_NAMES = 20;

/** A name as servers write it: Gemini lists `models/<name>`, Ollama `<name>:latest`. */
function bare(name: string): string {
  return name.replace(/^models\//, "").replace(/:latest$/, "");
}

/** Pure: the warning for `model` given the ids the endpoint lists, or undefined when it is one of them (or the list is empty). */
export function unknownModelMessage(model: string, ids: readonly string[]): string | undefined {
  if (ids.length === 0 || ids.some((id) => id === model || bare(id) === bare(model))) return undefined;
  const shown = ids.slice(0, LISTED_NAMES).join(", ");
  const more = ids.length > LISTED_NAMES ? `, and ${ids.length - LISTED_NAMES} more` : "";
  return (
    `openai.default_model "${model}" is not one of the ${ids.length} models the endpoint lists (${shown}${more}): ` +
    `turns will fail until openai.default_model (or OPENAI_DEFAULT_MODEL) names one of them`
  );
}

interface CheckLog {
  debug(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
}

/** One check at start; `close()` stops it if it is still waiting. */
export class ModelCheck {
  readonly done: Promise<void>;
  readonly #abort = new AbortController();

  constructor(client: OpenAI, model: string, log: CheckLog) {
    this.done = this.#run(client, model, log);
  }

  async #run(client: OpenAI, model: string, log: CheckLog): Promise<void> {
    const timer = setTimeout(() => this.#abort.abort(), MODEL_CHECK_TIMEOUT_MS);
    timer.unref();
    try {
      const ids: string[] = [];
      for await (const entry of client.models.list({ signal: this.#abort.signal, maxRetries: 0, timeout: MODEL_CHECK_TIMEOUT_MS })) {
        if (typeof entry.id === "string") ids.push(entry.id);
        if (ids.length >= 10_000) break;
      }
      const message = unknownModelMessage(model, ids);
      if (message) log.warn("model_unknown", { model, listed: ids.length, message });
      else log.debug("model_listed", { model, listed: ids.length });
    } catch (error) {
      // Many servers have no model list, or hide it: that is not a fault of the config.
      log.debug("model_list_unavailable", { model, error: error instanceof Error ? error.message : String(error) });
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#abort.abort();
  }
}
