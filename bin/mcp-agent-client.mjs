#!/usr/bin/env node
// `npx mcp-agent-client`: runs client.ts with no build step. tsx compiles it on import, in this
// process, so Ctrl+C, stdin and the exit code need no forwarding between processes.
import { tsImport } from "tsx/esm/api";

const client = await tsImport("../client.ts", import.meta.url);
process.exit(await client.main(process.argv.slice(2)));
