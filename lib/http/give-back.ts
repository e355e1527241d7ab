// Connections the server refuses or cuts off are given back: the answer is written, then the
// socket is destroyed, whether or not the client ever closes its side. A half-closed socket
// (`end()` alone) keeps its descriptor until the client leaves, and enough of those make the
// server refuse everyone.
import type { Duplex } from "node:stream";

/** Time the answer has to reach the client before the connection is cut anyway, ms. */
export const GIVE_BACK_GRACE_MS = 1000;

/** Writes `answer` (if the socket can still take it), ends it, and destroys it soon after. */
export function endAndDestroy(socket: Duplex, answer?: string | Buffer, graceMs = GIVE_BACK_GRACE_MS): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  // Destroyed right after the flush would often be fine, but a client still sending (a request
  // body) would then get a reset that can discard our answer before it reads it: a short grace
  // lets it read; past it, the descriptor is freed whatever the client does.
  const timer = setTimeout(() => socket.destroy(), graceMs);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
  socket.on("error", () => socket.destroy());
  socket.end(answer);
}
