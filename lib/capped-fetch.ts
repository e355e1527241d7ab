// A `fetch` whose response bodies are read under a byte cap, for clients whose reading we do not
// control (the openai SDK's `response.json()`, the MCP SDK's transports): the cap is applied to
// the bytes as they arrive, before anything is parsed, and past it the body errors and the
// connection is dropped, so nothing from outside is ever held whole beyond the cap.
// An event stream is long-lived and made of messages: its cap is per line (one SSE `data:` line
// is one JSON message for both the model API and MCP); any other body is capped as a whole.

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface BodyCap {
  maxBytes: number;
  /** The error a body past the cap fails with (it names the config key). */
  tooLarge: (maxBytes: number) => Error;
}

/** `fetch` (by default the global one) with every response body held to `cap`. */
export function cappedFetch(cap: BodyCap, inner: FetchLike = (input, init) => fetch(input, init)): FetchLike {
  return async (input, init) => capResponse(await inner(input, init), cap);
}

/** The same response, its body read through the cap. */
export function capResponse(response: Response, cap: BodyCap): Response {
  if (!response.body) return response;
  const perLine = (response.headers.get("content-type") ?? "").includes("text/event-stream");
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (!perLine && Number.isFinite(declared) && declared > cap.maxBytes) {
    void response.body.cancel().catch(() => undefined);
    const error = cap.tooLarge(cap.maxBytes);
    return new Response(new ReadableStream({ start: (controller) => controller.error(error) }), responseInit(response));
  }
  let counted = 0;
  const body = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (perLine) {
          const first = chunk.indexOf(10);
          if (first === -1) counted += chunk.length;
          else {
            const last = chunk.lastIndexOf(10);
            // The line that was running, then every whole line of this chunk, then the one it starts.
            const longest = Math.max(counted + first, longestLine(chunk, first, last));
            counted = longest > cap.maxBytes ? longest : chunk.length - last - 1;
          }
        } else counted += chunk.length;
        if (counted > cap.maxBytes) controller.error(cap.tooLarge(cap.maxBytes));
        else controller.enqueue(chunk);
      },
    }),
  );
  return new Response(body, responseInit(response));
}

function responseInit(response: Response): ResponseInit {
  return { status: response.status, statusText: response.statusText, headers: response.headers };
}

/** The longest line of `chunk` between its first and its last newline. */
function longestLine(chunk: Uint8Array, first: number, last: number): number {
  let longest = 0;
  for (let start = first + 1, at = first; at < last; start = at + 1) {
    at = chunk.indexOf(10, start);
    longest = Math.max(longest, at - start);
  }
  return longest;
}
