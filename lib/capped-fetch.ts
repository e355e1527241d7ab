// A `fetch` whose response bodies are read under a byte cap, for clients whose reading we do not
// control (the openai SDK's `response.json()`, the MCP SDK's transports): the cap is applied to
// the bytes as they arrive, before anything is parsed, so nothing from outside is ever held whole
// beyond the cap. An event stream is long-lived and made of messages: its cap is per line (one
// SSE `data:` line is one JSON message for both the model API and MCP); any other body is capped
// as a whole. Past the cap the body errors (the connection is dropped), or, when the caller says
// what stands in for it, an oversized line is skipped and replaced and the stream goes on.

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface BodyCap {
  maxBytes: number;
  /** The error a body past the cap fails with (it names the config key). */
  tooLarge: (maxBytes: number) => Error;
  /**
   * What a whole body past the cap becomes instead of an error (`request`: the body we sent),
   * or undefined to fail with `tooLarge`.
   */
  replaceBody?: (request: RequestInit | undefined) => string | undefined;
  /** What an event-stream line past the cap becomes (`request`: the body we sent), or undefined to fail. */
  replaceLine?: (request: RequestInit | undefined) => string | undefined;
}

/** `fetch` (by default the global one) with every response body held to `cap`. */
export function cappedFetch(cap: BodyCap, inner: FetchLike = (input, init) => fetch(input, init)): FetchLike {
  return async (input, init) => capResponse(await inner(input, init), cap, init);
}

/** The same response, its body read through the cap. */
export function capResponse(response: Response, cap: BodyCap, request?: RequestInit): Response {
  if (!response.body) return response;
  const perLine = (response.headers.get("content-type") ?? "").includes("text/event-stream");
  const body = perLine ? lineCapped(response.body, cap, request) : wholeCapped(response.body, cap, request);
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

function wholeCapped(source: ReadableStream<Uint8Array>, cap: BodyCap, request: RequestInit | undefined): ReadableStream<Uint8Array> {
  let counted = 0;
  // With a replacement, the body is held (up to the cap) until it is known to fit: bytes passed
  // on could not be taken back. Without one, bytes flow on and the body errors past the cap.
  const held: Uint8Array[] | undefined = cap.replaceBody ? [] : undefined;
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        counted += chunk.length;
        if (counted <= cap.maxBytes) {
          if (held) held.push(chunk);
          else controller.enqueue(chunk);
          return;
        }
        const replacement = cap.replaceBody?.(request);
        if (replacement === undefined) return controller.error(cap.tooLarge(cap.maxBytes));
        held?.splice(0);
        controller.enqueue(new TextEncoder().encode(replacement));
        controller.terminate();
      },
      flush(controller) {
        for (const chunk of held ?? []) controller.enqueue(chunk);
      },
    }),
  );
}

function lineCapped(source: ReadableStream<Uint8Array>, cap: BodyCap, request: RequestInit | undefined): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  // The line being read is held (up to the cap) until its newline: a line found too long then
  // is dropped whole, never passed on in part.
  let line: Uint8Array[] = [];
  let running = 0;
  let skipping = false;
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        let at = 0;
        while (at < chunk.length) {
          const newline = chunk.indexOf(10, at);
          const end = newline === -1 ? chunk.length : newline;
          const piece = chunk.subarray(at, end);
          running += piece.length;
          if (!skipping && running > cap.maxBytes) {
            if (!cap.replaceLine) return controller.error(cap.tooLarge(cap.maxBytes));
            skipping = true;
            line = [];
          }
          if (!skipping) line.push(piece.slice());
          if (newline === -1) break;
          if (skipping) {
            const replacement = cap.replaceLine?.(request);
            if (replacement !== undefined) controller.enqueue(encoder.encode(replacement));
          } else for (const part of line) controller.enqueue(part);
          controller.enqueue(encoder.encode("\n"));
          line = [];
          running = 0;
          skipping = false;
          at = newline + 1;
        }
      },
      flush(controller) {
        if (!skipping) for (const part of line) controller.enqueue(part);
      },
    }),
  );
}
