// What one model answer and one turn may write: text plus every tool call's name and arguments
// count against one budget per answer (limits.max_answer_chars) and one per turn
// (limits.max_turn_output_chars); an answer names at most limits.max_parallel_tool_calls calls;
// its response body is read under limits.max_answer_bytes before it is parsed (lib/capped-fetch.ts).
import { cappedFetch, type FetchLike } from "../capped-fetch.ts";

/** A model answer past one of the output budgets: the call fails with this, naming the key. */
export class OutputBudgetError extends Error {
  override name = "OutputBudgetError";
  readonly code: "output_too_large" | "too_many_tool_calls";
  constructor(message: string, code: OutputBudgetError["code"] = "output_too_large") {
    super(message);
    this.code = code;
  }
}

/** The model client's `fetch`: every answer's body held to `maxBytes` as it arrives. */
export function modelFetch(maxBytes: number, inner?: FetchLike): FetchLike {
  return cappedFetch(
    {
      maxBytes,
      tooLarge: (max) => new OutputBudgetError(`the model's answer was larger than ${max} bytes (limits.max_answer_bytes)`),
    },
    inner,
  );
}

/** The characters one answer has left (text plus tool calls), and its cap on tool calls. */
export class AnswerBudget {
  readonly maxChars: number;
  readonly #maxCalls: number;
  #used = 0;

  constructor(maxChars: number, maxCalls: number) {
    this.maxChars = maxChars;
    this.#maxCalls = maxCalls;
  }

  /** The part of a text delta that fits; the rest is cut (the caller says so). */
  text(piece: string): string {
    const kept = piece.slice(0, Math.max(0, this.maxChars - this.#used));
    this.#used += kept.length;
    return kept;
  }

  /** A tool call's index, refused past the cap (the index comes from the model and must not size an array). */
  callIndex(index: number): void {
    if (index >= this.#maxCalls)
      throw new OutputBudgetError(
        `the model asked for more than ${this.#maxCalls} tool calls in one answer (limits.max_parallel_tool_calls)`,
        "too_many_tool_calls",
      );
  }

  /** Characters of a tool call's name or arguments: past the budget the answer fails, as arguments cut short would be wrong. */
  toolChars(name: string, chars: number): void {
    this.#used += chars;
    if (this.#used > this.maxChars)
      throw new OutputBudgetError(
        `the model's answer with tool call "${name.slice(0, 100)}" was longer than ${this.maxChars} characters (limits.max_answer_chars)`,
      );
  }
}

/** Characters an assistant message writes: its text and every tool call's name and arguments. */
export function answerChars(message: { content?: unknown; tool_calls?: readonly unknown[] }): number {
  let chars = typeof message.content === "string" ? message.content.length : 0;
  for (const call of message.tool_calls ?? []) {
    if (typeof call === "object" && call !== null && "function" in call) {
      const fn = call.function;
      if (typeof fn === "object" && fn !== null && "name" in fn && "arguments" in fn)
        chars += String(fn.name).length + String(fn.arguments).length;
    }
  }
  return chars;
}

/** The turn's refusal once its answers together wrote more than `maxChars`. */
export function turnOutputRefusal(usedChars: number, maxChars: number): OutputBudgetError | undefined {
  if (usedChars <= maxChars) return undefined;
  return new OutputBudgetError(
    `the model wrote more than ${maxChars} characters in this turn (limits.max_turn_output_chars); the turn was stopped`,
  );
}
