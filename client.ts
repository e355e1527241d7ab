// The command-line client: an interactive chat when stdin is a terminal, otherwise a scripting
// tool (-m messages or stdin lines) whose stdout carries only the answers. It speaks the
// streaming extension of the protocol and falls back to seed frames for servers that ignore it.
//
// This file is the entry point (`npm run client`, bin/mcp-agent-client.mjs); the work is in
// client/: options.ts (the command line, exit codes), frames.ts (what goes over the socket),
// link.ts (the socket), display.ts (text and the terminal), script.ts and interactive.ts (the
// two modes).
import path from "node:path";
import { pathToFileURL } from "node:url";
import { formatSize, uploadFile } from "./client/files.ts";
import { InteractiveChat } from "./client/interactive.ts";
import { connect } from "./client/link.ts";
import { ClientError, EXIT_OK, EXIT_USAGE, parseOptions, PROGRAM, USAGE, UsageError, type ClientOptions } from "./client/options.ts";
import { runScript, type Output } from "./client/script.ts";

// What this module exported before it was split, for tests and anyone who imports the client.
export { clock, colourWanted, formatArguments } from "./client/display.ts";
export {
  classifyFrame,
  lateApprovalCallId,
  parseApprovalAnswer,
  policyAnswer,
  type ApprovalAnswer,
  type Incoming,
} from "./client/frames.ts";
export {
  ClientError,
  DENY_ALL_REASON,
  EXIT_CONNECTION,
  EXIT_OK,
  EXIT_TIMEOUT,
  EXIT_TURN_ERROR,
  EXIT_USAGE,
  parseOptions,
  socketTarget,
  USAGE,
  UsageError,
  type ApprovalPolicy,
  type ClientOptions,
  type SocketTarget,
} from "./client/options.ts";

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const io: Output = { stdout: process.stdout, stderr: process.stderr };
  // `client | head` closes stdout early: that is the reader's choice, not a failure to report.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(EXIT_OK);
  });
  let options: ClientOptions;
  try {
    options = parseOptions(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`${PROGRAM}: ${error.message}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (options.help) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const interactive = process.stdin.isTTY === true && options.messages.length === 0 && !options.json;
  try {
    const connection = await connect(options);
    // Before any message: the messages are likely about these files.
    for (const file of options.uploads) {
      try {
        const uploaded = await uploadFile(options, file);
        io.stderr.write(`uploaded ${file} (${formatSize(uploaded.size)}) to the workspace as ${uploaded.path}\n`);
      } catch (error) {
        await connection.link.close();
        throw error;
      }
    }
    const attached: string[] = [];
    for (const file of options.attach) {
      try {
        const uploaded = await uploadFile(options, file);
        attached.push(uploaded.path);
        io.stderr.write(`attached ${file} (${formatSize(uploaded.size)}), uploaded to the workspace as ${uploaded.path}\n`);
      } catch (error) {
        await connection.link.close();
        throw error;
      }
    }
    if (interactive) return await new InteractiveChat(connection, options, process.stdin, process.stdout, env, attached).run();
    return await runScript(connection, options, io, process.stdin, attached);
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    io.stderr.write(`✖ ${error.message}\n`);
    return error.exitCode;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  // process.exit: stdout and stderr writes are synchronous on Linux pipes, files and terminals,
  // and a stdin reader would otherwise keep the process alive after the last answer.
  process.exit(await main(process.argv.slice(2)));
}
