// @ts-check
// What an error frame that belongs to no running turn is about. Decided on its ids and its `code`
// (docs/protocol.md), never on its English text, which is for people.

/**
 * An error frame as far as the page reads it: a seed `error` frame or a streaming one
 * (lib/protocol.ts ErrorFrame, StreamErrorFrame). `code` is a string, not the server's list of
 * codes: a newer server may send one this page does not know, which is then a notice.
 * @typedef {{ type?: "error", error: string, code?: string, client_id?: string, call_id?: string, request_id?: string }} ErrorFields
 */

/**
 * @typedef {{ kind: "form", requestId: string }
 *   | { kind: "refused", clientId: string }
 *   | { kind: "late_approval", callId: string }
 *   | { kind: "too_long" }
 *   | { kind: "reset_failed" }
 *   | { kind: "notice" }} ErrorRoute
 * form: a question's form refused the answer (it stays open, the reason under it); refused: the
 * message this tab sent with that client_id; late_approval: an answer that came too late (another
 * tab, or the timeout, was first); too_long: the newest message was too long (a refusal that may
 * come without its client_id); reset_failed: New chat did not go through; notice: anything else.
 */

/**
 * @param {ErrorFields} frame
 * @param {{ hasForm: (requestId: string) => boolean, pending: number }} known what the page shows
 *   now: the open question forms, and how many messages wait for the server's acknowledgement
 * @returns {ErrorRoute}
 */
export function routeError(frame, known) {
  if (frame.request_id !== undefined && known.hasForm(frame.request_id)) return { kind: "form", requestId: frame.request_id };
  if (frame.client_id !== undefined) return { kind: "refused", clientId: frame.client_id };
  switch (frame.code) {
    case "no_pending_approval":
      return frame.call_id === undefined ? { kind: "notice" } : { kind: "late_approval", callId: frame.call_id };
    case "message_too_long":
      return known.pending > 0 ? { kind: "too_long" } : { kind: "notice" };
    case "reset_failed":
      return { kind: "reset_failed" };
    default:
      return { kind: "notice" };
  }
}
