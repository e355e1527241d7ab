// @ts-check
// Which buttons work now: Send and New chat while connected (and no reset is on its way), Stop
// while a turn runs, Disconnect while the page wants a connection.
import { isOpen, wantsConnection } from "./connection.js";
import { ui } from "./dom.js";
import { conversation } from "./turns.js";

export function updateControls() {
  const open = isOpen();
  ui.send.disabled = !open || conversation.resetting;
  ui.stop.disabled = !open || !conversation.running();
  ui.newChat.disabled = !open || conversation.resetting;
  ui.disconnect.disabled = !wantsConnection();
}
