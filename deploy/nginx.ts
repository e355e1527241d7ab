// Renders deploy/nginx.conf.template: the listen address and one `server` line per instance.
// As a command, prints the rendered file:
//   npx tsx deploy/nginx.ts --listen 8000 --servers 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

export const TEMPLATE_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), "nginx.conf.template");
/** The rendered example shipped beside the template: 3 instances on 8001-8003 behind 8000. */
export const EXAMPLE_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), "nginx.conf");
export const EXAMPLE = { listen: "8000", servers: ["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"] };

export interface NginxOptions {
  /** A port ("8000") or address:port ("127.0.0.1:8000"). */
  listen: string;
  /** host:port of every instance. */
  servers: readonly string[];
  /** Failed attempts within failTimeoutSeconds that take a server out for failTimeoutSeconds. */
  maxFails?: number;
  failTimeoutSeconds?: number;
}

export function renderNginxConfig(template: string, options: NginxOptions): string {
  if (options.servers.length === 0) throw new Error("at least one upstream server is needed");
  for (const server of options.servers) {
    if (!/^[\w.-]+:\d{1,5}$|^\[[\da-fA-F:]+\]:\d{1,5}$/.test(server)) throw new Error(`not a host:port: "${server}"`);
  }
  if (!/^(?:[\w.-]+:|\[[\da-fA-F:]+\]:)?\d{1,5}$/.test(options.listen)) throw new Error(`not a port or address:port: "${options.listen}"`);
  const maxFails = options.maxFails ?? 1;
  const failTimeout = options.failTimeoutSeconds ?? 10;
  const servers = options.servers
    .map((server) => `        server ${server} max_fails=${maxFails} fail_timeout=${failTimeout}s;`)
    .join("\n");
  const rendered = template.replaceAll("{{LISTEN}}", options.listen).replaceAll("{{SERVERS}}", servers);
  const left = /\{\{\w+\}\}/.exec(rendered);
  if (left) throw new Error(`the template has a placeholder this renderer does not fill: ${left[0]}`);
  return rendered;
}

export function renderTemplate(options: NginxOptions): string {
  return renderNginxConfig(readFileSync(TEMPLATE_PATH, "utf8"), options);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const { values } = parseArgs({
    options: { listen: { type: "string", default: EXAMPLE.listen }, servers: { type: "string", default: EXAMPLE.servers.join(",") } },
  });
  process.stdout.write(renderTemplate({ listen: values.listen, servers: values.servers.split(",").filter(Boolean) }));
}
