// A tool that answers -32042 (URL elicitation required) names pages the user must open first
// (a sign-in, a payment): each is shown like a URL elicitation, and once the user says it is done
// the call is made again, once.
import { ErrorCode, McpError, type ElicitRequestURLParams } from "@modelcontextprotocol/sdk/types.js";
import { isRecord } from "../protocol.ts";
import type { ClientRequests } from "./client-requests.ts";

/** The URL elicitations of a -32042 error, or undefined for any other error. */
export function urlElicitationsOf(error: unknown): ElicitRequestURLParams[] | undefined {
  if (!(error instanceof McpError) || error.code !== ErrorCode.UrlElicitationRequired) return undefined;
  const data: unknown = error.data;
  const list = isRecord(data) && Array.isArray(data.elicitations) ? data.elicitations : [];
  const found: ElicitRequestURLParams[] = [];
  for (const item of list.slice(0, 5)) {
    if (!isRecord(item) || typeof item.url !== "string" || !URL.canParse(item.url)) continue;
    found.push({
      mode: "url",
      url: item.url,
      message: typeof item.message === "string" ? item.message : `Open ${item.url} to continue`,
      elicitationId: typeof item.elicitationId === "string" ? item.elicitationId : item.url,
    });
  }
  return found.length > 0 ? found : undefined;
}

/** Asks the user to open each page; true when they said every one is done. */
export async function completeUrlElicitations(
  requests: ClientRequests | undefined,
  server: string,
  elicitations: readonly ElicitRequestURLParams[],
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (!requests) return false;
  for (const params of elicitations) {
    const result = await requests.elicit(server, params, signal ?? new AbortController().signal);
    if (result.action !== "accept") return false;
  }
  return true;
}
