// Scripting mode: each -m message, or each non-empty line of stdin, is sent in turn and its answer
// printed to stdout (or every frame, with --json); notes and errors go to stderr, and the exit
// code says whether every message was answered.
import { randomUUID } from "node:crypto";
import readline from "node:readline";
import type { ApprovalRequestFrame } from "../lib/protocol.ts";
import { formatArguments, incompleteAnswerNote, waitText } from "./display.ts";
import {
  approvalFrame,
  chatFrame,
  lateApprovalCallId,
  policyAnswer,
  refusesOwnMessage,
  startsOwnTurn,
  type Incoming,
  type Sent,
} from "./frames.ts";
import type { Connection, Link } from "./link.ts";
import { ClientError, EXIT_CONNECTION, EXIT_OK, EXIT_TIMEOUT, EXIT_TURN_ERROR, PROGRAM, type ClientOptions } from "./options.ts";

type Outcome =
  { kind: "answer"; text: string; finishReason?: string | undefined } | { kind: "error"; text: string } | { kind: "cancelled" };

/** Picks out the final frame of one message's turn. */
interface OutcomeMatcher {
  match(incoming: Incoming): Outcome | undefined;
  started(): boolean;
  /** The id of the message's turn, once it started (always undefined on a seed socket). */
  turnId(): string | undefined;
}

function outcomeMatcher(streaming: boolean, sent: Sent): OutcomeMatcher {
  if (!streaming) {
    return {
      match: (incoming) => {
        if (incoming.kind === "answer") return { kind: "answer", text: incoming.frame.message, finishReason: incoming.finishReason };
        if (incoming.kind === "error") return { kind: "error", text: incoming.frame.error };
        return undefined;
      },
      started: () => true,
      turnId: () => undefined,
    };
  }
  let turnId: string | undefined;
  return {
    match: (incoming) => {
      if (turnId === undefined) {
        if (incoming.kind === "turn_start" && startsOwnTurn(incoming, sent)) turnId = incoming.frame.turn_id;
        else if (incoming.kind === "error" && refusesOwnMessage(incoming, sent)) return { kind: "error", text: incoming.frame.error };
        return undefined;
      }
      if (incoming.kind === "answer" && incoming.turnId === turnId)
        return { kind: "answer", text: incoming.frame.message, finishReason: incoming.finishReason };
      if (incoming.kind === "error" && incoming.turnId === turnId) return { kind: "error", text: incoming.frame.error };
      if (incoming.kind === "cancelled" && incoming.frame.turn_id === turnId) return { kind: "cancelled" };
      return undefined;
    },
    started: () => turnId !== undefined,
    turnId: () => turnId,
  };
}

export interface Output {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function printJson(out: NodeJS.WritableStream, data: unknown): void {
  out.write(`${JSON.stringify(data)}\n`);
}

function quoteMessage(message: string): string {
  const short = message.length > 60 ? `${message.slice(0, 60)}…` : message;
  return JSON.stringify(short);
}

async function ask(
  connection: Connection,
  message: string,
  options: ClientOptions,
  io: Output,
  attachments: string[] = [],
): Promise<Outcome> {
  const { link } = connection;
  const sent: Sent = { text: message, clientId: randomUUID(), ...(attachments.length > 0 ? { attachments } : {}) };
  await link.send(chatFrame(sent));
  const deadline = Date.now() + options.timeoutMs;
  const matcher = outcomeMatcher(connection.streaming, sent);
  for (;;) {
    const received = await link.next(deadline);
    if (received === "timeout") {
      // Only a turn known to be ours is cancelled: a cancel stops whatever turn of the user
      // runs, and while ours is still queued that would be another tab's.
      const cancel = matcher.started() || !connection.streaming;
      if (cancel) await link.send({ type: "cancel" }).catch(() => undefined);
      const what = cancel ? "cancelled it" : "it is still queued behind other turns";
      throw new ClientError(`no answer within ${options.timeoutMs / 1000} s to ${quoteMessage(message)}; ${what}`, EXIT_TIMEOUT);
    }
    if (received.kind === "closed") throw new ClientError(received.reason, EXIT_CONNECTION);
    if (options.json) printJson(io.stdout, received.data);
    const { incoming } = received;
    // Only the calls of this message's turn: other tabs' calls are theirs to answer.
    if (incoming.kind === "approval_request" && incoming.frame.turn_id === matcher.turnId()) {
      await answerOwnApproval(connection, incoming.frame, message, options, io);
      continue;
    }
    if (incoming.kind === "elicitation_request" && incoming.frame.turn_id === matcher.turnId()) {
      // A script has nobody to ask: the question is left to the user's other clients.
      io.stderr.write(
        `note: ${quoteMessage(message)}: MCP server ${incoming.frame.server} asks "${incoming.frame.message}"; a script does not answer, ` +
          `so it waits for another client of user ${connection.welcome.user_id} (the chat page, or ${PROGRAM} in a terminal), and is declined ` +
          `if nobody answers within ${waitText(incoming.frame.timeout_ms)}\n`,
      );
      continue;
    }
    if (incoming.kind === "error" && lateApprovalCallId(incoming) !== undefined) {
      // Our answer lost the race (the server's timeout, or another client, was first): the
      // approval_resolved frame said how the call ended, and the turn goes on.
      io.stderr.write(`note: ${incoming.frame.error}\n`);
      continue;
    }
    const outcome = matcher.match(incoming);
    if (outcome) return outcome;
  }
}

/** A call of our own turn waits for approval: answered as the flag says, or left to another client. */
async function answerOwnApproval(
  connection: Connection,
  request: ApprovalRequestFrame,
  message: string,
  options: ClientOptions,
  io: Output,
): Promise<void> {
  const answer = policyAnswer(options.approvals);
  if (answer) {
    await connection.link.send(approvalFrame(request.call_id, answer));
    return;
  }
  io.stderr.write(
    `note: ${quoteMessage(message)}: the tool call ${request.name} ${formatArguments(request.arguments)} waits for approval from another client ` +
      `of user ${connection.welcome.user_id} (the chat page, or ${PROGRAM} in a terminal); this client answers only with --approve-all or --deny-all, ` +
      `and if nobody answers within ${waitText(request.timeout_ms)} the server denies the call\n`,
  );
}

/** The -m values, one after another. */
async function* givenMessages(messages: readonly string[]): AsyncGenerator<string, void> {
  yield* messages;
}

/** Each non-empty line of stdin, read as it arrives (so a slow producer is answered line by line). */
async function* stdinMessages(stdin: NodeJS.ReadableStream): AsyncGenerator<string, void> {
  for await (const line of readline.createInterface({ input: stdin, crlfDelay: Infinity })) {
    // Blank lines are skipped: the server ignores blank messages and would never answer.
    if (line.trim() !== "") yield line;
  }
}

// Resolves after pending I/O callbacks ran: long enough for a line already read to arrive.
const afterPendingIo = () => new Promise<"pending">((resolve) => setImmediate(() => resolve("pending")));

/**
 * The next line of stdin, or a ClientError if the connection drops while we wait for one. A line
 * (or the end of input) that is already there wins over a close that happened meanwhile.
 */
async function nextLine(source: AsyncIterator<string, void>, link: Link): Promise<string | undefined> {
  const next = source.next();
  const first = await Promise.race([next, link.closed]);
  if (typeof first === "string") {
    const settled = await Promise.race([next, afterPendingIo()]);
    if (settled === "pending") throw new ClientError(first, EXIT_CONNECTION);
    return settled.done ? undefined : settled.value;
  }
  return first.done ? undefined : first.value;
}

export async function runScript(
  connection: Connection,
  options: ClientOptions,
  io: Output,
  stdin: NodeJS.ReadableStream,
  attached: string[] = [],
): Promise<number> {
  const { link } = connection;
  if (options.json) printJson(io.stdout, connection.welcomeData);
  // -m messages need no race with the close: a send on a closed socket already fails.
  const fromStdin = options.messages.length === 0;
  const source = fromStdin ? stdinMessages(stdin) : givenMessages(options.messages);
  const read = async (): Promise<string | undefined> => {
    if (fromStdin) return nextLine(source, link);
    const next = await source.next();
    return next.done ? undefined : next.value;
  };
  let failed = false;
  try {
    for (let message = await read(); message !== undefined; message = await read()) {
      // --attach files go with the first message.
      const outcome = await ask(connection, message, options, io, attached.splice(0));
      if (outcome.kind === "answer") {
        if (!options.json) io.stdout.write(`${outcome.text}\n`);
        if (outcome.finishReason !== undefined)
          io.stderr.write(`${quoteMessage(message)}: ${incompleteAnswerNote(outcome.finishReason)}\n`);
        continue;
      }
      // An error answers this message only: the rest still go out, the exit code records it.
      failed = true;
      const text = outcome.kind === "error" ? outcome.text : "the turn was cancelled";
      io.stderr.write(`✖ ${quoteMessage(message)}: ${text}\n`);
    }
  } finally {
    if (options.json) for (const received of link.drain()) if (received.kind === "frame") printJson(io.stdout, received.data);
    await link.close();
  }
  return failed ? EXIT_TURN_ERROR : EXIT_OK;
}
