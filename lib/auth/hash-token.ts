// `npm run hash-token -- [--user <id>] [token]`: a line for the users file (server.auth.users_file).
// Without a token, a new random one is made and printed once: give it to the user, keep only the hash.
import { randomBytes } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { isValidUserId, USER_ID_RULE } from "../protocol.ts";
import { hashToken } from "./token-hash.ts";

export const HASH_TOKEN_USAGE = `Usage: npm run hash-token -- [--user <user_id>] [token]

Prints a line for the users file (server.auth.users_file). Without a token a random one is made
and printed on stderr: hand it to the user; the server keeps only the hash.`;

export async function hashTokenMain(argv: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { user: { type: "string" }, help: { type: "boolean" } } });
  } catch (error) {
    err(`${(error as Error).message}\n${HASH_TOKEN_USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    out(HASH_TOKEN_USAGE);
    return 0;
  }
  const user = parsed.values.user ?? "<user_id>";
  if (parsed.values.user !== undefined && !isValidUserId(user)) {
    err(`--user: invalid user id: ${USER_ID_RULE}`);
    return 2;
  }
  let token = parsed.positionals[0];
  if (token === undefined) {
    token = randomBytes(24).toString("base64url");
    err(`token for ${user} (shown once): ${token}`);
  } else if (token.length < 12) {
    err("the token must be at least 12 characters: it is the user's only credential");
    return 2;
  }
  out(`${user}: "${await hashToken(token)}"`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await hashTokenMain(
    process.argv.slice(2),
    (line) => console.log(line),
    (line) => console.error(line),
  );
}
