// The two libraries index.html loads as classic scripts from /vendor (lib/http/static-files.ts):
// globals, absent when they did not load (the page then shows model text as plain text).
import type * as markedModule from "marked";
import type DOMPurifyDefault from "dompurify";

declare global {
  interface Window {
    marked?: typeof markedModule;
    DOMPurify?: typeof DOMPurifyDefault;
  }
}

export {};
