// How the client shows things to a person: tool arguments and waits on one line, clock stamps,
// and the terminal Screen with its colours. Scripts use the text helpers for their notes too.
import readline from "node:readline";

// One copy of the formatting the page shows too (page/format.js).
export { firstLine, formatArguments, waitText } from "../page/format.js";

const STYLES = { dim: "2", bold: "1", red: "31", green: "32", yellow: "33", cyan: "36", magenta: "35" } as const;
export type Style = keyof typeof STYLES;

/** https://no-color.org: colour only on a terminal, never when NO_COLOR is set (to anything but ""). */
export function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

export function clock(date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `[${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}]`;
}

/** Terminal output that knows whether the cursor is at the start of a line. */
export class Screen {
  readonly #out: NodeJS.WriteStream;
  readonly #colour: boolean;
  atLineStart = true;

  constructor(out: NodeJS.WriteStream, colour: boolean) {
    this.#out = out;
    this.#colour = colour;
  }

  paint(style: Style, text: string): string {
    return this.#colour ? `\x1b[${STYLES[style]}m${text}\x1b[0m` : text;
  }

  stamp(): string {
    return this.paint("dim", clock());
  }

  write(text: string): void {
    if (!text) return;
    this.#out.write(text);
    this.atLineStart = text.endsWith("\n");
  }

  /** Ends a line that streamed text left open. */
  endLine(): void {
    if (!this.atLineStart) this.write("\n");
  }

  /** A whole line, starting a new one if streamed text left the cursor mid-line. */
  line(text: string): void {
    this.endLine();
    this.write(`${text}\n`);
  }

  /** Wipes the prompt line so output can take its place; readline redraws it later. */
  clearLine(): void {
    readline.cursorTo(this.#out, 0);
    readline.clearLine(this.#out, 0);
    this.atLineStart = true;
  }
}
