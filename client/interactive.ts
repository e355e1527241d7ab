// Interactive mode, for a terminal: a chat prompt that shows every turn of the user as it streams
// (other tabs' too), asks y/n/a for tool calls that wait for approval, and maps Ctrl+C to cancel.
import { randomUUID } from "node:crypto";
import readline from "node:readline";
import type {
  AnswerFrame,
  ApprovalRequestFrame,
  ApprovalResolvedFrame,
  CancelledFrame,
  DeltaFrame,
  ElicitationField,
  ElicitationRequestFrame,
  ElicitationResolvedFrame,
  ElicitationValue,
  HistoryItem,
  ToolEndFrame,
  ToolProgressFrame,
  ToolStartFrame,
} from "../lib/protocol.ts";
import { checkElicitationAnswer } from "../lib/mcp/elicitation.ts";
import { colourWanted, firstLine, formatArguments, Screen, waitText, type Style } from "./display.ts";
import { progressAmount } from "../page/format.js";
import {
  approvalFrame,
  chatFrame,
  isRecord,
  lateApprovalCallId,
  parseApprovalAnswer,
  policyAnswer,
  refusesOwnMessage,
  startsOwnTurn,
  type ApprovalAnswer,
  type Incoming,
  type IncomingError,
  type IncomingTurnStart,
  type OutgoingFrame,
  type Sent,
} from "./frames.ts";
import { downloadFile, formatListing, formatSize, listFiles, uploadFile } from "./files.ts";
import type { Connection } from "./link.ts";
import { ClientError, EXIT_CONNECTION, EXIT_OK, type ClientOptions } from "./options.ts";

const INTERACTIVE_HELP = `Commands:
  help         show this help
  /history     show the conversation so far
  /cancel      stop the running turn (also Ctrl+C)
  /files      list the files in your workspace
  /download PATH [DEST]
              save a workspace file to DEST (default: its name here); quote names with spaces
  /upload FILE
              put a local file into your workspace, under its own name
  quit, exit   leave (also Ctrl+D, or Ctrl+C twice)
Anything else is sent to the agent.
While a tool call waits for your approval (⚠), the next line answers it:
  y            yes, run it
  n [reason]   no; the reason, if any, is passed on to the agent ("n not now")
  a            always: yes, and do not ask again for this tool in this session
When an MCP server asks you something (?), its fields are asked one by one: type the value
(Enter keeps the default or skips an optional field); "/decline" or "/dismiss" answers no.`;

const CHAT_PROMPT = "you> ";
const APPROVAL_PROMPT = "approve? [y/n/a]> ";
const APPROVAL_CHOICES = "[y]es / [n]o / [a]lways";

/** Two Ctrl+C within this time quit even while a turn runs. */
const DOUBLE_INTERRUPT_MS = 1000;

interface OwnMessage extends Sent {
  turnId: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

interface TurnView {
  turnId: string;
  /** Text streamed since the last tool line: an answer that was not streamed is printed whole. */
  streamed: string;
  /** The tool line left open (no newline yet) waiting for its result, if nothing came between. */
  openTool: string | undefined;
  tools: Map<string, { name: string; args: string }>;
}

/** A command line split on spaces, "double quotes" keeping one argument together. */
export function splitArguments(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((found) => found[1] ?? found[2] ?? "");
}

export class InteractiveChat {
  readonly #connection: Connection;
  readonly #options: ClientOptions;
  readonly #screen: Screen;
  readonly #rl: readline.Interface;
  readonly #own: OwnMessage[] = [];
  #turn: TurnView | undefined;
  #promptShown = false;
  #lastInterrupt = 0;
  /** After one Ctrl+C (a cancel, or a cleared line) the next one quits, as in the Node REPL; a line resets it. */
  #interruptArmed = false;
  #finish: ((code: number) => void) | undefined;
  #done = false;
  /** Approval requests not answered yet, oldest first: the first one is the question asked. */
  #asked: ApprovalRequestFrame[] = [];
  /** The form last sent: asked again if the server refuses its values. */
  #lastForm: { frame: ElicitationRequestFrame; index: number; values: Record<string, ElicitationValue> } | undefined;
  /** Elicitations waiting, the first being asked field by field. */
  #forms: { frame: ElicitationRequestFrame; index: number; values: Record<string, ElicitationValue> }[] = [];
  /** Every request seen and not resolved yet, with what we answered to it (if we did). */
  readonly #requests = new Map<string, { frame: ApprovalRequestFrame; answer: ApprovalAnswer | undefined }>();
  /**
   * The question that was asked and then settled elsewhere (another tab, the timeout) before we
   * answered. An answer typed just after that is sent for it (the server says it came too late)
   * rather than to the agent as a chat message "y".
   */
  #missed: string | undefined;

  constructor(
    connection: Connection,
    options: ClientOptions,
    stdin: NodeJS.ReadStream,
    stdout: NodeJS.WriteStream,
    env: NodeJS.ProcessEnv,
  ) {
    this.#connection = connection;
    this.#options = options;
    this.#screen = new Screen(stdout, colourWanted(stdout, env));
    this.#rl = readline.createInterface({
      input: stdin,
      output: stdout,
      prompt: CHAT_PROMPT,
      terminal: stdout.isTTY === true,
      historySize: 200,
    });
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    this.#greet();
    this.#rl.on("line", (line) => void this.#onLine(line));
    this.#rl.on("SIGINT", () => void this.#onInterrupt());
    // Without a terminal on stdout readline is not in raw mode and Ctrl+C arrives as a signal.
    process.on("SIGINT", () => void this.#onInterrupt());
    this.#rl.on("close", () => void this.#quit(EXIT_OK));
    void this.#pump();
    this.#showPrompt();
    return done;
  }

  get #busy(): boolean {
    return this.#turn !== undefined || this.#own.length > 0;
  }

  #greet(): void {
    const { welcome, streaming } = this.#connection;
    this.#say(
      `${this.#screen.paint("green", "connected")} to ${this.#options.target.display} as ${welcome.user_id} (session ${welcome.session_id})`,
    );
    if (!streaming)
      this.#say(this.#screen.paint("yellow", "this server does not stream: answers arrive whole; /cancel and /history are not available"));
    this.#screen.line(this.#screen.paint("dim", 'type "help" for commands'));
  }

  /** A timestamped line. */
  #say(text: string): void {
    this.#beforeOutput();
    this.#screen.line(`${this.#screen.stamp()} ${text}`);
  }

  #error(text: string): void {
    this.#say(this.#screen.paint("red", `✖ ${text}`));
  }

  #beforeOutput(): void {
    if (this.#promptShown) {
      this.#screen.clearLine();
      this.#promptShown = false;
    }
  }

  #showPrompt(): void {
    if (this.#done || this.#promptShown) return;
    // While a turn runs there is no prompt, unless a tool call of it waits for an answer.
    const form = this.#forms[0];
    const asking = this.#asked.length > 0 || form !== undefined;
    if (this.#busy && !asking) return;
    this.#screen.endLine();
    this.#rl.setPrompt(form ? formPrompt(form.frame, form.index) : asking ? APPROVAL_PROMPT : CHAT_PROMPT);
    this.#promptShown = true;
    // preserveCursor keeps whatever the user had typed while output was printed.
    this.#rl.prompt(true);
  }

  async #onLine(line: string): Promise<void> {
    this.#screen.atLineStart = true;
    this.#promptShown = false;
    this.#interruptArmed = false;
    const text = line.trim();
    // The commands still work while a question is open; any other line answers it.
    const form = this.#forms[0];
    if (form && !["help", "/help", "quit", "exit", "/quit", "/exit", "/history", "/cancel"].includes(text)) {
      return this.#answerField(form, line);
    }
    const question = this.#asked[0];
    const word = text.split(/\s/, 1)[0] ?? "";
    const commands = ["help", "/help", "quit", "exit", "/quit", "/exit", "/history", "/cancel", "/files", "/download", "/upload"];
    if (question && !commands.includes(word)) {
      return this.#answerQuestion(question, text);
    }
    const missed = this.#missed;
    this.#missed = undefined;
    const late = missed !== undefined && this.#busy ? parseApprovalAnswer(text) : undefined;
    if (missed !== undefined && late) {
      await this.#send(approvalFrame(missed, late));
      return this.#showPrompt();
    }
    switch (text) {
      case "":
        return this.#showPrompt();
      case "help":
      case "/help":
        this.#screen.line(INTERACTIVE_HELP);
        return this.#showPrompt();
      case "quit":
      case "exit":
      case "/quit":
      case "/exit":
        return this.#quit(EXIT_OK);
      case "/history":
        return this.#request({ type: "history" }, "history");
      case "/cancel":
        return this.#cancel();
    }
    const [command = "", ...args] = splitArguments(text);
    if (command === "/files" || command === "/download" || command === "/upload") return this.#filesCommand(command, args);
    if (text.startsWith("/")) {
      this.#error(`unknown command ${text.split(/\s/, 1)[0]}; type "help"`);
      return this.#showPrompt();
    }
    // The line as typed (not trimmed) is sent, so the turn_start input matches it exactly.
    const own: OwnMessage = { text: line, clientId: randomUUID(), turnId: undefined, timer: undefined };
    own.timer = setTimeout(() => void this.#onTimeout(own), this.#options.timeoutMs);
    this.#own.push(own);
    await this.#send(chatFrame(own));
  }

  /** /files, /download, /upload: HTTP requests beside the socket; a turn may run meanwhile. */
  async #filesCommand(command: "/files" | "/download" | "/upload", args: string[]): Promise<void> {
    try {
      if (command === "/files") {
        if (args.length > 0) return this.#usage("/files takes no arguments");
        const lines = formatListing(await listFiles(this.#options));
        this.#say(`files of ${this.#options.user}:`);
        for (const line of lines) this.#screen.line(`  ${line}`);
      } else if (command === "/download") {
        const [remote, dest, extra] = args;
        if (remote === undefined || extra !== undefined)
          return this.#usage('usage: /download PATH [DEST] (quote names with spaces: /download "my notes.md")');
        const saved = await downloadFile(this.#options, remote, dest);
        this.#say(`${this.#screen.paint("green", "saved")} ${remote} to ${saved.path} (${formatSize(saved.size)})`);
      } else {
        const [local, extra] = args;
        if (local === undefined || extra !== undefined)
          return this.#usage('usage: /upload FILE (quote names with spaces: /upload "my notes.md")');
        const uploaded = await uploadFile(this.#options, local);
        this.#say(
          `${this.#screen.paint("green", "uploaded")} ${local} to the workspace as ${uploaded.path} (${formatSize(uploaded.size)})`,
        );
      }
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      this.#error(error.message);
    }
    this.#showPrompt();
  }

  #usage(text: string): void {
    this.#error(text);
    this.#showPrompt();
  }

  async #send(frame: OutgoingFrame): Promise<void> {
    try {
      await this.#connection.link.send(frame);
    } catch (error) {
      // The pump reports the close; a failed send only adds noise.
      if (!(error instanceof ClientError)) throw error;
    }
  }

  async #request(frame: OutgoingFrame, what: string): Promise<void> {
    if (!this.#connection.streaming) {
      this.#error(`${what} is not available: this server does not speak the streaming protocol`);
      return this.#showPrompt();
    }
    await this.#send(frame);
  }

  async #cancel(): Promise<void> {
    if (!this.#busy) {
      this.#say("nothing is running");
      return this.#showPrompt();
    }
    this.#say(this.#screen.paint("yellow", "cancelling… (Ctrl+C again to quit)"));
    await this.#request({ type: "cancel" }, "cancel");
  }

  async #onInterrupt(): Promise<void> {
    const now = Date.now();
    const quick = now - this.#lastInterrupt < DOUBLE_INTERRUPT_MS;
    this.#lastInterrupt = now;
    if (this.#busy) {
      if (quick) return this.#quit(EXIT_OK);
      // The next Ctrl+C quits once nothing runs any more, whenever it comes.
      this.#interruptArmed = true;
      return this.#cancel();
    }
    if (this.#interruptArmed || quick) return this.#quit(EXIT_OK);
    this.#interruptArmed = true;
    // Like a shell: Ctrl+C drops what was typed (Ctrl+E then Ctrl+U: all of the line).
    this.#rl.write(null, { ctrl: true, name: "e" });
    this.#rl.write(null, { ctrl: true, name: "u" });
    this.#beforeOutput();
    this.#screen.line(this.#screen.paint("dim", "(press Ctrl+C again or Ctrl+D to quit)"));
    this.#showPrompt();
  }

  async #onTimeout(own: OwnMessage): Promise<void> {
    if (!this.#own.includes(own)) return;
    const seconds = this.#options.timeoutMs / 1000;
    // A cancel stops whichever turn runs, so it is only sent once this message's turn is running.
    if (own.turnId !== undefined && this.#turn?.turnId === own.turnId) {
      this.#error(`no answer within ${seconds} s; cancelling`);
      await this.#send({ type: "cancel" });
    } else {
      this.#error(`no answer within ${seconds} s; the message is still queued`);
    }
  }

  async #pump(): Promise<void> {
    for (;;) {
      const received = await this.#connection.link.next();
      if (received === "timeout") continue;
      if (received.kind === "closed") {
        if (!this.#done) {
          this.#error(received.reason);
          await this.#quit(EXIT_CONNECTION);
        }
        return;
      }
      this.#render(received.incoming);
      this.#showPrompt();
    }
  }

  #render(incoming: Incoming): void {
    switch (incoming.kind) {
      case "approval_request":
        return this.#onApprovalRequest(incoming.frame);
      case "approval_resolved":
        return this.#onApprovalResolved(incoming.frame);
      case "turn_start":
        return this.#onTurnStart(incoming);
      case "delta":
        return this.#onDelta(incoming.frame);
      case "tool_start":
        return this.#onToolStart(incoming.frame);
      case "tool_end":
        return this.#onToolEnd(incoming.frame);
      case "tool_progress":
        return this.#onToolProgress(incoming.frame);
      case "elicitation_request":
        return this.#onElicitationRequest(incoming.frame);
      case "elicitation_resolved":
        return this.#onElicitationResolved(incoming.frame);
      case "answer":
        return this.#onAnswer(incoming.frame, incoming.turnId);
      case "error":
        return this.#onError(incoming);
      case "cancelled":
        return this.#onCancelled(incoming.frame);
      case "history":
        return this.#printHistory(incoming.frame.items);
      case "auth_required":
        // The user signs in in a browser; the tools come to this session once that is done.
        return this.#say(
          this.#screen.paint("yellow", `MCP server "${incoming.server}" needs you to sign in: open ${incoming.url} (waiting for it…)`),
        );
      case "auth_completed":
        return this.#say(this.#screen.paint("green", `signed in to ${incoming.server}: its tools are ready`));
      case "welcome":
      case "other":
        return;
    }
  }

  #onTurnStart(start: IncomingTurnStart): void {
    const { frame } = start;
    const own = this.#own.find((message) => message.turnId === undefined && startsOwnTurn(start, message));
    if (own) own.turnId = frame.turn_id;
    this.#turn = { turnId: frame.turn_id, streamed: "", openTool: undefined, tools: new Map() };
    // Another tab's message: show it, so the conversation here stays whole.
    if (!own) this.#say(`${this.#screen.paint("magenta", "(other tab) you>")} ${frame.input}`);
  }

  #view(turnId: string): TurnView | undefined {
    return this.#turn?.turnId === turnId ? this.#turn : undefined;
  }

  #onDelta(frame: DeltaFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    this.#beforeOutput();
    if (view.streamed === "") {
      // A new run of text (the first, or the first after a tool) gets its own timestamped line.
      this.#screen.endLine();
      view.openTool = undefined;
      this.#screen.write(`${this.#screen.stamp()} ${this.#screen.paint("cyan", "agent>")} `);
    }
    view.streamed += frame.text;
    this.#screen.write(frame.text);
  }

  #onToolStart(frame: ToolStartFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    const args = formatArguments(frame.arguments);
    view.tools.set(frame.call_id, { name: frame.name, args });
    this.#beforeOutput();
    this.#screen.endLine();
    this.#screen.write(`${this.#screen.stamp()} ${this.#screen.paint("yellow", `⚙ ${frame.name}`)} ${args} …`);
    view.openTool = frame.call_id;
    view.streamed = "";
  }

  #onToolEnd(frame: ToolEndFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    const result = frame.ok
      ? this.#screen.paint("green", `ok ${frame.duration_ms} ms`)
      : this.#screen.paint("red", `✖ failed ${frame.duration_ms} ms: ${firstLine(frame.preview)}`);
    this.#beforeOutput();
    if (view.openTool === frame.call_id && !this.#screen.atLineStart) {
      this.#screen.write(` ${result}\n`);
    } else {
      const tool = view.tools.get(frame.call_id);
      this.#screen.line(
        `${this.#screen.stamp()} ${this.#screen.paint("yellow", `⚙ ${tool?.name ?? frame.call_id}`)} ${tool?.args ?? ""} … ${result}`,
      );
    }
    view.openTool = undefined;
  }

  /** Progress goes on the tool's line while it is open, else on a line of its own. */
  #onToolProgress(frame: ToolProgressFrame): void {
    const view = this.#view(frame.turn_id);
    if (!view) return;
    const amount = progressAmount(frame.progress, frame.total) || `#${frame.progress}`;
    const text = this.#screen.paint("dim", `${amount}${frame.message ? ` ${firstLine(frame.message)}` : ""}`);
    this.#beforeOutput();
    if (view.openTool === frame.call_id && !this.#screen.atLineStart) {
      this.#screen.write(` ${text}`);
      return;
    }
    const tool = view.tools.get(frame.call_id);
    this.#screen.endLine();
    this.#screen.write(`${this.#screen.stamp()} ${this.#screen.paint("yellow", `⚙ ${tool?.name ?? frame.call_id}`)} … ${text}`);
    view.openTool = frame.call_id;
    view.streamed = "";
  }

  #onElicitationRequest(frame: ElicitationRequestFrame): void {
    if (this.#forms.some((form) => form.frame.request_id === frame.request_id)) return;
    if (frame.turn_id !== undefined) this.#closeToolLine(frame.turn_id);
    else {
      this.#beforeOutput();
      this.#screen.endLine();
    }
    this.#forms.push({ frame, index: 0, values: {} });
    if (this.#forms.length === 1) this.#introduceForm(frame);
  }

  #introduceForm(frame: ElicitationRequestFrame): void {
    const wait = frame.timeout_ms > 0 ? ` (waits up to ${waitText(frame.timeout_ms)})` : "";
    this.#say(`${this.#screen.paint("yellow", `? ${frame.server} asks:`)} ${frame.message}${wait}`);
    if (frame.mode === "url") this.#say(`  open ${this.#screen.paint("bold", frame.url ?? "")} then answer y (done), or /decline`);
    else
      this.#say(this.#screen.paint("dim", '  one field at a time; Enter keeps the default or skips; "/decline" or "/dismiss" to say no'));
    this.#describeField(frame, 0);
  }

  #describeField(frame: ElicitationRequestFrame, index: number): void {
    const field = frame.fields?.[index];
    if (!field) return;
    const options = field.options?.map((option, n) => `${n + 1}) ${option.label}`).join("  ");
    const details = [
      field.description,
      options,
      field.type === "multiselect" ? "several: numbers or values separated by commas" : undefined,
      field.type === "boolean" ? "y/n" : undefined,
      field.default !== undefined
        ? `default ${Array.isArray(field.default) ? field.default.join(", ") : String(field.default)}`
        : undefined,
    ].filter((part): part is string => part !== undefined && part !== "");
    if (details.length > 0) this.#say(this.#screen.paint("dim", `  ${details.join(" · ")}`));
  }

  async #answerField(
    form: { frame: ElicitationRequestFrame; index: number; values: Record<string, ElicitationValue> },
    line: string,
  ): Promise<void> {
    const text = line.trim();
    const { frame } = form;
    if (text === "/decline" || text === "/dismiss") return this.#sendForm(form, text === "/decline" ? "decline" : "cancel");
    if (frame.mode === "url") {
      if (/^(y|yes|done)$/i.test(text)) return this.#sendForm(form, "accept");
      if (/^(n|no)$/i.test(text)) return this.#sendForm(form, "decline");
      this.#error('answer y when done, or n (or "/decline") to decline');
      return this.#showPrompt();
    }
    const field = frame.fields?.[form.index];
    if (field) {
      const value = fieldValue(field, text);
      if (value !== undefined) {
        const checked = checkElicitationAnswer([field], { [field.name]: value });
        if (!checked.ok) {
          this.#error(checked.error);
          return this.#showPrompt();
        }
        const converted = checked.content[field.name];
        if (converted !== undefined) form.values[field.name] = converted;
      } else if (field.required) {
        this.#error(`"${field.title}" is required`);
        return this.#showPrompt();
      }
      form.index++;
    }
    if (form.index < (frame.fields?.length ?? 0)) {
      this.#describeField(frame, form.index);
      return this.#showPrompt();
    }
    return this.#sendForm(form, "accept");
  }

  async #sendForm(
    form: { frame: ElicitationRequestFrame; values: Record<string, ElicitationValue> },
    action: "accept" | "decline" | "cancel",
  ) {
    this.#forms = this.#forms.filter((other) => other !== form);
    this.#lastForm = { frame: form.frame, index: 0, values: {} };
    await this.#send({
      type: "elicitation",
      request_id: form.frame.request_id,
      action,
      ...(action === "accept" ? { content: form.values } : {}),
    });
    const next = this.#forms[0];
    if (next) this.#introduceForm(next.frame);
    this.#showPrompt();
  }

  #onElicitationResolved(frame: ElicitationResolvedFrame): void {
    const wasAsked = this.#forms[0]?.frame.request_id === frame.request_id;
    this.#forms = this.#forms.filter((form) => form.frame.request_id !== frame.request_id);
    const text =
      frame.action === "accept"
        ? this.#screen.paint("green", "✔ answered")
        : this.#screen.paint(
            frame.by === "user" ? "red" : "yellow",
            frame.by === "timeout" ? "⊘ declined: no answer in time" : `⊘ ${frame.action === "decline" ? "declined" : "cancelled"}`,
          );
    this.#say(text);
    const next = this.#forms[0];
    if (wasAsked && next) this.#introduceForm(next.frame);
  }

  /** Ends a turn: the view is dropped and, if it was ours, its message and timer too. */
  #endTurn(turnId: string | undefined): void {
    const own = turnId === undefined ? this.#own[0] : this.#own.find((message) => message.turnId === turnId);
    if (own) this.#forget(own);
    if (turnId === undefined || this.#turn?.turnId === turnId) this.#turn = undefined;
    // A turn that ended has nothing left to approve (its approval_resolved frames came first).
    this.#missed = undefined;
    this.#asked = this.#asked.filter((request) => turnId !== undefined && request.turn_id !== turnId);
    for (const [callId, { frame }] of this.#requests) if (turnId === undefined || frame.turn_id === turnId) this.#requests.delete(callId);
  }

  #onAnswer(frame: AnswerFrame, turnId: string | undefined): void {
    const view = turnId === undefined ? undefined : this.#view(turnId);
    this.#beforeOutput();
    if (view && view.streamed !== "" && view.openTool === undefined) {
      this.#screen.endLine();
    } else {
      // A seed answer, or a final text that was not streamed (after the last tool).
      this.#screen.line(`${this.#screen.stamp()} ${this.#screen.paint("cyan", "agent>")} ${frame.message}`);
    }
    this.#endTurn(turnId);
  }

  #onError(error: IncomingError): void {
    // The server refused our form's values: ask the fields again.
    if (error.requestId !== undefined) {
      this.#error(error.frame.error);
      const form = this.#forms.find((candidate) => candidate.frame.request_id === error.requestId);
      if (!form && this.#lastForm?.frame.request_id === error.requestId) {
        const again = { ...this.#lastForm, index: 0, values: {} };
        this.#forms.unshift(again);
        this.#introduceForm(again.frame);
      }
      return;
    }
    // Our answer came too late: another client or the timeout was first, as the line before said.
    if (lateApprovalCallId(error) !== undefined) return this.#say(this.#screen.paint("dim", error.frame.error));
    this.#error(error.frame.error);
    // Seed sockets answer each message with one frame, errors included. On a streaming socket
    // an error outside a turn is the refusal of a message of ours that has not started.
    if (error.turnId !== undefined || !this.#connection.streaming) return this.#endTurn(error.turnId);
    const waiting = this.#own.find((message) => message.turnId === undefined && refusesOwnMessage(error, message));
    if (waiting) this.#forget(waiting);
  }

  /** Our message got its final frame: it is no longer waited for. */
  #forget(own: OwnMessage): void {
    clearTimeout(own.timer);
    this.#own.splice(this.#own.indexOf(own), 1);
  }

  /** Is this turn one of our own messages (not another tab's)? */
  #ownTurn(turnId: string): boolean {
    return this.#own.some((message) => message.turnId === turnId);
  }

  /** Ends an open tool line, so the approval lines get lines of their own. */
  #closeToolLine(turnId: string): void {
    const view = this.#view(turnId);
    if (view) {
      view.openTool = undefined;
      view.streamed = "";
    }
    this.#beforeOutput();
    this.#screen.endLine();
  }

  #onApprovalRequest(frame: ApprovalRequestFrame): void {
    // A page (or this client) that joins mid-turn is sent the request again.
    if (this.#requests.has(frame.call_id)) return;
    const call = `${frame.name} ${formatArguments(frame.arguments)}`;
    const answer = this.#ownTurn(frame.turn_id) ? policyAnswer(this.#options.approvals) : undefined;
    this.#requests.set(frame.call_id, { frame, answer });
    this.#closeToolLine(frame.turn_id);
    if (answer) {
      const flag = answer.approved ? "--approve-all" : "--deny-all";
      this.#say(`${this.#screen.paint("yellow", `⚠ ${call}`)} needs approval: answered by ${flag}`);
      void this.#send(approvalFrame(frame.call_id, answer));
      return;
    }
    this.#asked.push(frame);
    // One question at a time: a second one is asked once the first is answered.
    if (this.#asked.length === 1) this.#ask(frame);
  }

  #ask(frame: ApprovalRequestFrame): void {
    const other = this.#ownTurn(frame.turn_id) ? "" : ` ${this.#screen.paint("magenta", "(other tab)")}`;
    const wait = frame.timeout_ms > 0 ? ` (waits up to ${waitText(frame.timeout_ms)})` : "";
    if (frame.kind === "sampling") {
      // The whole prompt: a person decides whether the model may see it.
      this.#say(`${this.#screen.paint("yellow", `⚠ MCP server ${frame.server} asks to use the model`)}${other}${wait}`);
      const prompt = isRecord(frame.arguments) ? frame.arguments : {};
      if (typeof prompt.system_prompt === "string") this.#say(this.#screen.paint("dim", `  system: ${prompt.system_prompt}`));
      for (const message of Array.isArray(prompt.messages) ? prompt.messages : []) {
        if (isRecord(message)) this.#say(`  ${String(message.role)}: ${String(message.text)}`);
      }
      this.#say(`  ${this.#screen.paint("bold", `allow ${frame.name}?`)} ${this.#screen.paint("bold", APPROVAL_CHOICES)}`);
      return;
    }
    this.#say(
      `${this.#screen.paint("yellow", `⚠ approve ${frame.name}`)} ${formatArguments(frame.arguments)}?${other} ${this.#screen.paint("bold", APPROVAL_CHOICES)}${wait}`,
    );
  }

  async #answerQuestion(frame: ApprovalRequestFrame, text: string): Promise<void> {
    const answer = parseApprovalAnswer(text);
    if (!answer) {
      if (text !== "")
        this.#error('answer y (yes), n (no; a reason may follow: "n not now") or a (always allow this tool in this session)');
      return this.#showPrompt();
    }
    this.#asked.shift();
    this.#missed = undefined;
    const known = this.#requests.get(frame.call_id);
    if (known) known.answer = answer;
    await this.#send(approvalFrame(frame.call_id, answer));
    const next = this.#asked[0];
    if (next) this.#ask(next);
    this.#showPrompt();
  }

  #onApprovalResolved(frame: ApprovalResolvedFrame): void {
    const known = this.#requests.get(frame.call_id);
    this.#requests.delete(frame.call_id);
    const wasAsked = this.#asked[0]?.call_id === frame.call_id;
    this.#asked = this.#asked.filter((request) => request.call_id !== frame.call_id);
    this.#closeToolLine(frame.turn_id);
    const name = known?.frame.name ?? `call ${frame.call_id}`;
    // Someone else's answer (another tab, another client) is marked as such.
    const elsewhere = frame.by === "user" && known?.answer === undefined ? " (answered by another client)" : "";
    if (frame.approved) {
      const always = known?.answer?.always === true ? ": always allowed for the rest of the session" : "";
      this.#say(`${this.#screen.paint("green", `✔ ${name} approved`)}${always}${elsewhere}`);
    } else {
      const style: Style = frame.by === "cancel" ? "yellow" : "red";
      this.#say(`${this.#screen.paint(style, `⊘ ${name}`)} ${frame.reason ?? "denied"}${elsewhere}`);
    }
    if (wasAsked) this.#missed = frame.call_id;
    // The question that was open is gone: ask the next one, if any.
    const next = this.#asked[0];
    if (wasAsked && next) this.#ask(next);
  }

  #onCancelled(frame: CancelledFrame): void {
    this.#say(this.#screen.paint("yellow", "⊘ turn cancelled"));
    this.#endTurn(frame.turn_id);
  }

  #printHistory(items: HistoryItem[]): void {
    this.#beforeOutput();
    const paint = (style: Style, text: string) => this.#screen.paint(style, text);
    this.#screen.line(paint("dim", `── history: ${items.length} ${items.length === 1 ? "item" : "items"} ──`));
    for (const item of items) {
      if (item.role === "user") {
        const status = item.status === "ok" ? "" : ` ${paint("yellow", `(${item.status})`)}`;
        this.#screen.line(`${paint("bold", "you>")} ${item.content}${status}`);
      } else if (item.role === "assistant") {
        this.#screen.line(`${paint("cyan", "agent>")} ${item.content}`);
      } else {
        const result = item.ok ? paint("green", "ok") : paint("red", `✖ failed: ${firstLine(item.preview)}`);
        this.#screen.line(`${paint("yellow", `⚙ ${item.name}`)} ${formatArguments(item.arguments)} … ${result}`);
      }
    }
    this.#screen.line(paint("dim", "── end of history ──"));
  }

  async #quit(code: number): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    for (const own of this.#own) clearTimeout(own.timer);
    this.#beforeOutput();
    this.#screen.endLine();
    this.#rl.close();
    await this.#connection.link.close();
    this.#finish?.(code);
  }
}

/** The prompt for a form's field: its title, marked when required. */
function formPrompt(frame: ElicitationRequestFrame, index: number): string {
  if (frame.mode === "url") return "done? [y/n]> ";
  const field = frame.fields?.[index];
  return field ? `${field.title}${field.required ? " *" : ""}> ` : "> ";
}

/** A typed line as a field's value: an option's number or label for choices, y/n for booleans; undefined when empty. */
function fieldValue(field: ElicitationField, text: string): ElicitationValue | undefined {
  if (text === "") return field.default;
  const choose = (word: string) => {
    const options = field.options ?? [];
    const byNumber = /^\d+$/.test(word) ? options[Number(word) - 1] : undefined;
    return (
      (byNumber ?? options.find((option) => option.value === word || option.label.toLowerCase() === word.toLowerCase()))?.value ?? word
    );
  };
  switch (field.type) {
    case "boolean":
      return /^(y|yes|true)$/i.test(text) ? true : /^(n|no|false)$/i.test(text) ? false : text;
    case "enum":
      return choose(text);
    case "multiselect":
      return text
        .split(",")
        .map((word) => word.trim())
        .filter(Boolean)
        .map(choose);
    default:
      return text;
  }
}
