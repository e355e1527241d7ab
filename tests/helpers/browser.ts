// Debian's chromium for the page tests, driven by playwright-core (which never downloads a browser):
// where it is, whether the tests skip without it, and how it is started.
import { chromium, type Browser } from "playwright-core";
import { externalSkip, findExecutable } from "./external.ts";

export const CHROMIUM = findExecutable("CHROMIUM_PATH", ["/usr/bin/chromium"]);

/** The `skip` option of every browser test: a reason with the apt command when chromium is missing. */
export const chromiumSkip = externalSkip(`chromium at ${process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"}`, CHROMIUM, "chromium");

/** Headless, and quiet on a closed network: no background requests that would be refused by the dozen. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
