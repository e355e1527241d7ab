// Tests of the built-in fetch MCP server (fetch-tool.ts) and its SSRF guard (address-guard.ts).
// Every HTTP server here is local (127.0.0.1, port 0); the tool is reached through a real MCP
// client over an in-memory transport, as the agent server uses it.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  checkUrlTarget,
  cidrContains,
  classifyAddress,
  createGuardedLookup,
  FetchRefusedError,
  parseAllowList,
  parseCidr,
  parseIPv6,
} from "../../lib/fetch/address-guard.ts";
import {
  classifyContentType,
  createFetchServer,
  defaultFetchToolOptions,
  isRobotsAllowed,
  paginate,
  type FetchToolOptions,
} from "../../lib/fetch/fetch-tool.ts";
import { stripScriptsAndStyles } from "../../lib/fetch/markdown.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

interface LocalServer {
  origin: string;
  port: number;
  /** Paths of all requests received, in order. */
  hits: string[];
  /** TCP connections accepted (a refused fetch must not even connect). */
  connections: () => number;
  close: () => Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, origin: string) => void;

async function startServer(handler: Handler): Promise<LocalServer> {
  const hits: string[] = [];
  let connections = 0;
  let origin = "";
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? "");
    handler(req, res, origin);
  });
  server.on("connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  const { port } = address;
  origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    port,
    hits,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

interface ToolOutcome {
  text: string;
  isError: boolean;
}

const clients: { close: () => Promise<void> }[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

/** A client connected in-process to a fresh fetch server, closed after all tests. */
async function connect(overrides: Partial<FetchToolOptions> = {}): Promise<Client> {
  const server = createFetchServer({ ...defaultFetchToolOptions, ...overrides });
  const client = new Client({ name: "fetch-test", version: "1.0.0" });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  await client.connect(clientTransport);
  clients.push({ close: async () => (await client.close(), await server.close()) });
  return client;
}

async function callFetch(client: Client, args: Record<string, unknown>): Promise<ToolOutcome> {
  const result = await client.callTool({ name: "fetch", arguments: args });
  const content = Array.isArray(result.content) ? result.content : [];
  const text = content
    .map((part: unknown) => (typeof part === "object" && part !== null && "text" in part && typeof part.text === "string" ? part.text : ""))
    .join("");
  return { text, isError: result.isError === true };
}

/** Options for tests against 127.0.0.1 that are not about robots.txt. */
const LOCAL: Partial<FetchToolOptions> = { allowHosts: ["127.0.0.1"], ignoreRobotsTxt: true };

function sendHtml(res: ServerResponse, html: string): void {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(html);
}

// ---------------------------------------------------------------------------------------------
// Pure address classifier and allow list

describe("classifyAddress", () => {
  const refused: [string, RegExp][] = [
    ["127.0.0.1", /loopback/],
    ["127.255.1.2", /loopback/],
    ["10.1.2.3", /private/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["169.254.169.254", /metadata/],
    ["169.254.1.1", /link-local/],
    ["100.64.0.1", /carrier-grade NAT/],
    ["100.100.100.200", /carrier-grade NAT/],
    ["0.0.0.0", /unspecified/],
    ["0.1.2.3", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["239.255.255.250", /multicast/],
    ["240.0.0.1", /reserved/],
    ["255.255.255.255", /broadcast/],
    ["198.18.0.1", /benchmarking/],
    ["198.19.255.255", /benchmarking/],
    ["192.0.2.1", /documentation/],
    ["198.51.100.1", /documentation/],
    ["203.0.113.9", /documentation/],
    ["192.0.0.8", /IETF/],
    ["::1", /loopback/],
    ["::", /unspecified/],
    ["fc00::1", /unique local/],
    ["fd00:ec2::254", /unique local/],
    ["fe80::1", /link-local/],
    ["fe80::1%eth0", /link-local/],
    ["ff02::1", /multicast/],
    ["::ffff:127.0.0.1", /IPv4-mapped address of 127\.0\.0\.1, a loopback/],
    ["::ffff:7f00:1", /IPv4-mapped address of 127\.0\.0\.1, a loopback/],
    ["::ffff:169.254.169.254", /IPv4-mapped.*metadata/],
    ["64:ff9b::a9fe:a9fe", /NAT64 address of 169\.254\.169\.254/],
    ["64:ff9b::10.0.0.1", /NAT64 address of 10\.0\.0\.1/],
    ["2002:7f00:1::1", /6to4 address of 127\.0\.0\.1/],
    ["2001:db8::1", /documentation/],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", /IETF/],
    ["::127.0.0.1", /IPv4-compatible/],
    ["100::1", /discard/],
    ["fec0::1", /site-local/],
    ["4000::1", /not a global unicast/],
    ["not-an-ip", /not a valid IP/],
    ["1.2.3", /not a valid IP/],
    ["0x7f.0.0.1", /not a valid IP/], // raw spellings are never seen: URL parsing normalises them
  ];
  for (const [ip, reason] of refused) {
    test(`refuses ${ip}`, () => {
      const verdict = classifyAddress(ip);
      assert.ok(verdict !== null, `${ip} should be refused`);
      assert.match(verdict, reason);
    });
  }
  const allowed = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1", // just outside 172.16/12
    "100.128.0.1", // just outside 100.64/10
    "169.253.255.255",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
  ];
  for (const ip of allowed) {
    test(`allows ${ip}`, () => assert.equal(classifyAddress(ip), null));
  }
});

test("parseIPv6 handles compression and dotted tails", () => {
  assert.equal(parseIPv6("::1"), 1n);
  assert.equal(parseIPv6("::ffff:127.0.0.1"), parseIPv6("::ffff:7f00:1"));
  assert.equal(parseIPv6("1:2:3:4:5:6:7.8.9.10"), parseIPv6("1:2:3:4:5:6:708:90a"));
  assert.equal(parseIPv6("1::"), 1n << 112n);
  assert.equal(parseIPv6("1:2:3"), null);
  assert.equal(parseIPv6("12345::"), null);
});

test("parseCidr and cidrContains, IPv4 CIDRs also match IPv4-mapped IPv6", () => {
  const net10 = parseCidr("10.0.0.0/8");
  assert.ok(net10);
  assert.ok(cidrContains(net10, "10.200.3.4"));
  assert.ok(!cidrContains(net10, "11.0.0.1"));
  assert.ok(cidrContains(net10, "::ffff:10.0.0.1"));
  const ula = parseCidr("fd00::/8");
  assert.ok(ula);
  assert.ok(cidrContains(ula, "fd12::1"));
  assert.ok(!cidrContains(ula, "fe80::1"));
  const single = parseCidr("127.0.0.1");
  assert.ok(single && cidrContains(single, "127.0.0.1") && !cidrContains(single, "127.0.0.2"));
  assert.ok(cidrContains({ family: 4, base: 0, prefix: 0 }, "8.8.8.8"));
  assert.equal(parseCidr("10.0.0.0/33"), null);
  assert.equal(parseCidr("::/129"), null);
  assert.equal(parseCidr("10.0.0.0/x"), null);
  assert.equal(parseCidr("intranet"), null);
});

test("parseAllowList splits names from IPs/CIDRs, normalises them and rejects junk", () => {
  const list = parseAllowList(["Intranet.Example.", "10.0.0.0/8", "[::1]", "0x7f.1", "bücher.example"]);
  assert.deepEqual([...list.hosts].sort(), ["intranet.example", "xn--bcher-kva.example"]);
  assert.equal(list.cidrs.length, 3);
  assert.ok(
    list.cidrs.some((c) => cidrContains(c, "127.0.0.1")),
    "0x7f.1 is 127.0.0.1, as in URLs",
  );
  assert.throws(() => parseAllowList(["10.0.0.0/40"]), /allow_hosts/);
  assert.throws(() => parseAllowList([""]), /allow_hosts/);
  assert.throws(() => createFetchServer({ ...defaultFetchToolOptions, allowHosts: ["a b/c"] }), /allow_hosts/);
});

test("WHATWG URL parsing normalises IP spellings before the guard sees them", () => {
  assert.equal(new URL("http://2130706433/").hostname, "127.0.0.1");
  assert.equal(new URL("http://0x7f.1/").hostname, "127.0.0.1");
  assert.equal(new URL("http://0177.0.0.1/").hostname, "127.0.0.1");
  assert.equal(new URL("http://[::ffff:127.0.0.1]/").hostname, "[::ffff:7f00:1]");
  const none = parseAllowList([]);
  for (const spelling of ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "[0:0:0:0:0:0:0:1]"]) {
    const refusal = checkUrlTarget(new URL(`http://${spelling}/`), none);
    assert.ok(refusal, spelling);
    assert.match(refusal, /loopback/);
  }
  assert.equal(checkUrlTarget(new URL("http://example.com/"), none), null, "names are checked at lookup");
  assert.equal(checkUrlTarget(new URL("http://127.0.0.1/"), parseAllowList(["127.0.0.0/8"])), null);
  assert.match(checkUrlTarget(new URL("file:///etc/passwd"), none) ?? "", /only http and https/);
  assert.match(checkUrlTarget(new URL("gopher://x/"), none) ?? "", /only http and https/);
});

describe("guarded lookup (the check on the address actually connected to)", () => {
  const lookupAll = (host: string, allow: string[], all: boolean) =>
    new Promise<{ error: Error | null; address: unknown }>((resolve) => {
      createGuardedLookup(`http://${host}/`, parseAllowList(allow))(host, { all }, (error, address) => resolve({ error, address }));
    });

  for (const all of [true, false]) {
    test(`refuses a name resolving to loopback (all: ${all})`, async () => {
      const { error } = await lookupAll("localhost", [], all);
      assert.ok(error instanceof FetchRefusedError);
      assert.match(error.message, /localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/);
      assert.match(error.message, /allow_hosts/);
    });
  }

  test("passes addresses through when the host name is allowed", async () => {
    const { error, address } = await lookupAll("localhost", ["localhost"], true);
    assert.equal(error, null);
    assert.ok(Array.isArray(address) && address.length > 0);
  });

  test("passes the address when every resolved address is in an allowed CIDR", async () => {
    const { error, address } = await lookupAll("localhost", ["127.0.0.0/8", "::1"], false);
    assert.equal(error, null);
    assert.equal(typeof address, "string");
  });
});

// ---------------------------------------------------------------------------------------------
// Other pure parts

describe("isRobotsAllowed", () => {
  const ua = defaultFetchToolOptions.userAgent;
  test("no rules or no matching group allows everything", () => {
    assert.ok(isRobotsAllowed("", ua, "/a"));
    assert.ok(isRobotsAllowed("User-agent: googlebot\nDisallow: /", ua, "/a"));
    assert.ok(isRobotsAllowed("User-agent: *\nDisallow:", ua, "/a"), "empty Disallow allows all");
  });
  test("the * group applies when no group names us", () => {
    assert.ok(!isRobotsAllowed("User-agent: *\nDisallow: /private", ua, "/private/x"));
    assert.ok(isRobotsAllowed("User-agent: *\nDisallow: /private", ua, "/public"));
  });
  test("a group naming our product token replaces the * group", () => {
    const robots = "User-agent: *\nDisallow: /\n\nUser-agent: ModelContextProtocol\nDisallow: /secret\n";
    assert.ok(isRobotsAllowed(robots, ua, "/page"));
    assert.ok(!isRobotsAllowed(robots, ua, "/secret"));
    assert.ok(!isRobotsAllowed(robots, "OtherBot/2.0", "/page"));
  });
  test("consecutive User-agent lines share a group; comments are ignored", () => {
    const robots = "# hi\nUser-agent: a\nUser-agent: modelcontextprotocol # us\nDisallow: /x # no\nUser-agent: b\nDisallow: /";
    assert.ok(!isRobotsAllowed(robots, ua, "/x"));
    assert.ok(isRobotsAllowed(robots, ua, "/y"));
  });
  test("longest match wins, Allow wins a tie, * and $ patterns", () => {
    const robots = "User-agent: *\nDisallow: /docs\nAllow: /docs/public\nDisallow: /*.pdf$\nAllow: /tie\nDisallow: /tie";
    assert.ok(!isRobotsAllowed(robots, ua, "/docs/secret"));
    assert.ok(isRobotsAllowed(robots, ua, "/docs/public/a"));
    assert.ok(!isRobotsAllowed(robots, ua, "/files/a.pdf"));
    assert.ok(isRobotsAllowed(robots, ua, "/files/a.pdf?x=1"));
    assert.ok(isRobotsAllowed(robots, ua, "/tie"));
  });
  test("queries are part of the path, /robots.txt is always allowed", () => {
    assert.ok(!isRobotsAllowed("User-agent: *\nDisallow: /search?q=", ua, "/search?q=x"));
    assert.ok(isRobotsAllowed("User-agent: *\nDisallow: /", ua, "/robots.txt"));
  });
});

test("classifyContentType", () => {
  assert.equal(classifyContentType("text/html; charset=utf-8"), "html");
  assert.equal(classifyContentType("application/xhtml+xml"), "html");
  for (const t of [
    "text/plain",
    "application/json",
    "application/xml",
    "application/ld+json",
    "image/svg+xml",
    "text/javascript",
    "application/javascript",
  ]) {
    assert.equal(classifyContentType(t), "text", t);
  }
  for (const t of [
    "image/png",
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "audio/mpeg",
    "video/mp4",
    "font/woff2",
  ]) {
    assert.equal(classifyContentType(t), "binary", t);
  }
  assert.equal(classifyContentType(""), "unknown");
  assert.equal(classifyContentType("application/x-custom"), "unknown");
});

test("paginate", () => {
  assert.equal(paginate("abcdef", 0, 10), "abcdef");
  assert.equal(
    paginate("abcdef", 2, 2),
    "cd\n\n<error>Content truncated. Call the fetch tool with a start_index of 4 to get more content.</error>",
  );
  assert.equal(paginate("abcdef", 4, 2), "ef");
  assert.equal(paginate("abcdef", 6, 2), "<error>No more content available.</error>");
  assert.match(paginate("a😀b", 0, 2), /^a\n\n.*start_index of 1 /s, "a surrogate pair is not split");
});

// ---------------------------------------------------------------------------------------------
// The tool over MCP

test("lists the fetch tool with mcp-server-fetch's schema", async () => {
  const client = await connect();
  const { tools } = await client.listTools();
  assert.equal(tools.length, 1);
  const [tool] = tools;
  assert.ok(tool);
  assert.equal(tool.name, "fetch");
  assert.match(tool.description ?? "", /^Fetches a URL from the internet and optionally extracts its contents as markdown\./);
  assert.deepEqual(tool.inputSchema.required, ["url"]);
  assert.deepEqual(Object.keys(tool.inputSchema.properties ?? {}).sort(), ["max_length", "raw", "start_index", "url"]);
  assert.equal(client.getServerVersion()?.name, "fetch");
});

test("invalid arguments are tool errors", async () => {
  const client = await connect(LOCAL);
  for (const args of [
    { url: "http://127.0.0.1/", max_length: 0 },
    { url: "http://127.0.0.1/", start_index: -1 },
    { url: "http://127.0.0.1/", max_length: 1_000_000 },
    {},
  ]) {
    const outcome = await callFetch(client, args);
    assert.ok(outcome.isError, JSON.stringify(args));
  }
  const bad = await callFetch(client, { url: "not a url" });
  assert.ok(bad.isError);
  assert.match(bad.text, /Invalid URL/);
});

describe("content", () => {
  const article = `<!doctype html><html><head><title>Test Article</title>
    <script>var trackingSecret = "SCRIPT-TEXT";</script><style>.x{color:red}</style></head>
    <body>
      <nav><a href="/home">Home</a> | <a href="/about">About us</a></nav>
      <article>
        <h1>Test Article</h1>
        <p>The first paragraph has a <a href="/docs/page">relative link</a> and enough words to look like
        real content: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>
        <h2>Second section</h2>
        <p>The second paragraph keeps going so that Readability is sure this is the article: ut enim ad
        minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>
        <ul><li>first item</li><li>second item</li></ul>
        <ol start="3"><li>third</li><li>fourth</li></ol>
        <table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>1</td></tr></table>
        <script>document.write("INLINE-SCRIPT")</script>
      </article>
      <footer>Copyright footer</footer>
    </body></html>`;
  const jsonBody = JSON.stringify({ hello: "world", list: [1, 2, 3] });
  const longText = Array.from({ length: 300 }, (_, i) => `line ${i}`).join("\n");
  let server: LocalServer;
  let client: Client;

  before(async () => {
    server = await startServer((req, res) => {
      if (req.url === "/article") return sendHtml(res, article);
      if (req.url === "/json") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(jsonBody);
      }
      if (req.url === "/long") {
        res.writeHead(200, { "content-type": "text/plain" });
        return res.end(longText);
      }
      if (req.url === "/untyped-html") return res.end("<html><body><p>no content type</p></body></html>");
      if (req.url === "/png") {
        res.writeHead(200, { "content-type": "image/png" });
        return res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
      }
      if (req.url === "/pdf") {
        res.writeHead(200, { "content-type": "application/pdf" });
        return res.end("%PDF-1.7");
      }
      if (req.url === "/bin") {
        res.writeHead(200, { "content-type": "application/x-custom" });
        return res.end(Buffer.from([1, 2, 0, 3]));
      }
      if (req.url === "/gzip") {
        res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip" });
        return res.end(gzipSync("compressed hello"));
      }
      if (req.url === "/latin1") {
        res.writeHead(200, { "content-type": "text/plain; charset=iso-8859-1" });
        return res.end(Buffer.from([0x63, 0x61, 0x66, 0xe9])); // "café"
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    });
    client = await connect(LOCAL);
  });
  after(() => server.close());

  test("HTML is reduced to its article and converted to Markdown", async () => {
    const url = `${server.origin}/article`;
    const { text, isError } = await callFetch(client, { url, max_length: 100_000 });
    assert.equal(isError, false);
    assert.ok(text.startsWith(`Contents of ${url}:\n`), text);
    assert.match(text, /^# Test Article$/m);
    assert.match(text, /^## Second section$/m);
    assert.ok(text.includes(`[relative link](${server.origin}/docs/page)`), "links are made absolute");
    assert.match(text, /^- first item\n- second item$/m);
    assert.match(text, /^3\. third\n4\. fourth$/m);
    assert.match(text, /\| Name \| Value \|/, "tables become GFM tables");
    assert.ok(!text.includes("SCRIPT-TEXT") && !text.includes("INLINE-SCRIPT"), "no script text");
    assert.ok(!text.includes("color:red"), "no style text");
    assert.ok(!text.includes("About us"), "navigation is not main content");
  });

  test("raw returns the body unchanged", async () => {
    const url = `${server.origin}/article`;
    const { text, isError } = await callFetch(client, { url, raw: true, max_length: 100_000 });
    assert.equal(isError, false);
    assert.equal(text, `Contents of ${url}:\n${article}`);
  });

  test("non-HTML text is passed through with mcp-server-fetch's prefix", async () => {
    const url = `${server.origin}/json`;
    const { text, isError } = await callFetch(client, { url });
    assert.equal(isError, false);
    assert.equal(
      text,
      `Content type application/json cannot be simplified to markdown, but here is the raw content:\nContents of ${url}:\n${jsonBody}`,
    );
  });

  test("an untyped body that looks like HTML is treated as HTML", async () => {
    const { text, isError } = await callFetch(client, { url: `${server.origin}/untyped-html` });
    assert.equal(isError, false);
    assert.match(text, /no content type/);
    assert.ok(!text.includes("<p>"));
  });

  test("gzip bodies are decompressed and charsets honoured", async () => {
    assert.match((await callFetch(client, { url: `${server.origin}/gzip` })).text, /compressed hello$/);
    assert.match((await callFetch(client, { url: `${server.origin}/latin1` })).text, /café$/);
  });

  test("pagination: two calls with start_index cover the whole content", async () => {
    const url = `${server.origin}/long`;
    const half = Math.ceil(longText.length / 2);
    const header = `Content type text/plain cannot be simplified to markdown, but here is the raw content:\nContents of ${url}:\n`;
    const first = await callFetch(client, { url, max_length: half });
    assert.equal(first.isError, false);
    const note = first.text.match(
      /\n\n<error>Content truncated\. Call the fetch tool with a start_index of (\d+) to get more content\.<\/error>$/,
    );
    assert.ok(note?.[1], first.text.slice(-200));
    assert.equal(Number(note[1]), half);
    const second = await callFetch(client, { url, max_length: half, start_index: half });
    assert.ok(second.text.startsWith(header));
    const firstPart = first.text.slice(header.length, first.text.length - note[0].length);
    const secondPart = second.text.slice(header.length);
    assert.equal(firstPart + secondPart, longText);
    const beyond = await callFetch(client, { url, start_index: longText.length });
    assert.ok(beyond.text.endsWith("<error>No more content available.</error>"));
  });

  test("binary content is refused", async () => {
    for (const path of ["/png", "/pdf", "/bin"]) {
      const { text, isError } = await callFetch(client, { url: `${server.origin}${path}` });
      assert.equal(isError, true, path);
      assert.match(text, /is binary, and this tool only returns text/, path);
    }
  });

  test("HTTP error statuses are tool errors", async () => {
    const url = `${server.origin}/missing`;
    const { text, isError } = await callFetch(client, { url });
    assert.equal(isError, true);
    assert.equal(text, `Failed to fetch ${url} - status code 404`);
  });
});

test("connection failures are tool errors, not exceptions", async () => {
  const server = await startServer((_req, res) => res.end());
  const { origin } = server;
  await server.close(); // nothing listens on this port any more
  const client = await connect(LOCAL);
  const { text, isError } = await callFetch(client, { url: `${origin}/` });
  assert.equal(isError, true);
  assert.match(text, /^Failed to fetch http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/);
});

describe("limits", () => {
  test("the byte cap cuts a 10 MB body without reading it all", async () => {
    const total = 10 * 1024 * 1024;
    let sent = 0;
    let closed!: Promise<unknown>;
    const server = await startServer((_req, res) => {
      closed = once(res, "close");
      res.writeHead(200, { "content-type": "text/plain" });
      const chunk = Buffer.alloc(64 * 1024, "a");
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    try {
      const client = await connect({ ...LOCAL, maxBytes: 100_000 });
      const started = Date.now();
      const { text, isError } = await callFetch(client, { url: `${server.origin}/big`, max_length: 999_999 });
      assert.equal(isError, false);
      assert.ok(Date.now() - started < 5000, "returns quickly");
      assert.match(text, /larger than 100000 bytes \(max_fetch_bytes/);
      assert.equal((text.match(/a{1000,}/)?.[0] ?? "").length, 100_000, "exactly the cap is returned");
      await closed; // the client hung up instead of draining the rest
    } finally {
      await server.close();
    }
  });

  test("a response that never ends hits the deadline", async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("the start, and then nothing more");
    });
    try {
      const client = await connect({ ...LOCAL, timeoutMs: 300 });
      const started = Date.now();
      const { text, isError } = await callFetch(client, { url: `${server.origin}/slow` });
      assert.equal(isError, true);
      assert.match(text, /timed out after 0\.3 s .*fetch_timeout_seconds/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      await server.close();
    }
  });

  test("a server that never answers hits the deadline too", async () => {
    const server = await startServer(() => {
      // never respond
    });
    try {
      const client = await connect({ ...LOCAL, timeoutMs: 300 });
      const { text, isError } = await callFetch(client, { url: `${server.origin}/silent` });
      assert.equal(isError, true);
      assert.match(text, /timed out after 0\.3 s .*fetch_timeout_seconds/);
    } finally {
      await server.close();
    }
  });
});

describe("redirects", () => {
  let server: LocalServer;
  let client: Client;
  before(async () => {
    server = await startServer((req, res, origin) => {
      const hop = req.url?.match(/^\/hop\/(\d+)$/);
      if (hop?.[1]) {
        const left = Number(hop[1]);
        res.writeHead(302, { location: left > 1 ? `/hop/${left - 1}` : `${origin}/final` });
        return res.end();
      }
      if (req.url === "/final") {
        res.writeHead(200, { "content-type": "text/plain" });
        return res.end("arrived");
      }
      if (req.url === "/to-metadata") {
        res.writeHead(301, { location: "http://169.254.169.254/latest/meta-data" });
        return res.end();
      }
      if (req.url === "/to-file") {
        res.writeHead(307, { location: "file:///etc/passwd" });
        return res.end();
      }
      res.writeHead(404);
      res.end();
    });
    client = await connect(LOCAL);
  });
  after(() => server.close());

  test("a chain of 3 redirects is followed", async () => {
    const url = `${server.origin}/hop/3`;
    const { text, isError } = await callFetch(client, { url });
    assert.equal(isError, false);
    assert.ok(text.includes(`Contents of ${url} (redirected to ${server.origin}/final):\narrived`), text);
  });

  test("5 redirects are followed, 6 are refused", async () => {
    assert.equal((await callFetch(client, { url: `${server.origin}/hop/5` })).isError, false);
    const before = server.hits.length;
    const { text, isError } = await callFetch(client, { url: `${server.origin}/hop/6` });
    assert.equal(isError, true);
    assert.match(text, /more than 5 redirects/);
    assert.equal(server.hits.length - before, 6, "the 7th URL is never requested");
  });

  test("a redirect to the metadata address is refused", async () => {
    const { text, isError } = await callFetch(client, { url: `${server.origin}/to-metadata` });
    assert.equal(isError, true);
    assert.match(
      text,
      /^Refused to fetch http:\/\/169\.254\.169\.254\/latest\/meta-data: 169\.254\.169\.254 is the cloud metadata address/,
    );
    assert.match(text, /allow_hosts of the fetch server in mcp_agent\.config\.yaml/);
  });

  test("a redirect to another scheme is refused", async () => {
    const { text, isError } = await callFetch(client, { url: `${server.origin}/to-file` });
    assert.equal(isError, true);
    assert.match(text, /only http and https/);
  });
});

describe("SSRF guard through the tool", () => {
  let server: LocalServer;
  let client: Client;
  before(async () => {
    server = await startServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("internal secret");
    });
    client = await connect(); // default options: nothing internal allowed, robots.txt honoured
  });
  after(() => server.close());

  test("local, internal and non-http targets are refused before connecting", async () => {
    const p = server.port;
    const cases: [string, RegExp][] = [
      [`http://localhost:${p}/`, /localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/],
      [`http://[::1]:${p}/`, /::1 is a loopback address/],
      [`http://0.0.0.0:${p}/`, /0\.0\.0\.0 is an unspecified/],
      [`http://127.0.0.1:${p}/`, /127\.0\.0\.1 is a loopback address/],
      [`http://2130706433:${p}/`, /127\.0\.0\.1 is a loopback address/],
      [`http://0x7f.1:${p}/`, /127\.0\.0\.1 is a loopback address/],
      [`http://0177.0.0.1:${p}/`, /127\.0\.0\.1 is a loopback address/],
      [`http://[::ffff:127.0.0.1]:${p}/`, /::ffff:7f00:1 is an IPv4-mapped address of 127\.0\.0\.1, a loopback address/],
      ["http://169.254.169.254/latest/meta-data", /169\.254\.169\.254 is the cloud metadata address/],
      ["http://10.0.0.1/", /private/],
      ["http://[fd00:ec2::254]/", /unique local/],
      ["file:///etc/passwd", /only http and https URLs can be fetched, not file/],
      ["ftp://x/", /only http and https URLs can be fetched, not ftp/],
    ];
    for (const [url, reason] of cases) {
      const { text, isError } = await callFetch(client, { url });
      assert.equal(isError, true, url);
      assert.match(text, /^Refused to fetch /, url);
      assert.match(text, reason, url);
      if (url.startsWith("http")) assert.match(text, /To allow it, add it to allow_hosts of the fetch server in mcp_agent\.config\.yaml/);
    }
    assert.deepEqual(server.hits, []);
    assert.equal(server.connections(), 0, "no connection reached the local server");
  });

  test("allow_hosts by name or CIDR lets an internal host through", async () => {
    for (const allowHosts of [["localhost"], ["127.0.0.0/8", "::1"]]) {
      const allowed = await connect({ allowHosts, ignoreRobotsTxt: true });
      const url = allowHosts[0] === "localhost" ? `http://localhost:${server.port}/` : `${server.origin}/`;
      const { text, isError } = await callFetch(allowed, { url });
      assert.equal(isError, false, text);
      assert.match(text, /internal secret$/);
    }
  });
});

describe("robots.txt", () => {
  let server: LocalServer;
  let robotsStatus = 200;
  before(async () => {
    server = await startServer((req, res) => {
      if (req.url === "/robots.txt") {
        res.writeHead(robotsStatus, { "content-type": "text/plain" });
        return res.end("User-agent: *\nDisallow: /private\n");
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`page ${req.url}`);
    });
  });
  after(() => server.close());

  test("a disallowed page is refused without being requested", async () => {
    robotsStatus = 200;
    const client = await connect({ allowHosts: ["127.0.0.1"] });
    server.hits.length = 0;
    const { text, isError } = await callFetch(client, { url: `${server.origin}/private/page` });
    assert.equal(isError, true);
    assert.match(
      text,
      /^The site's robots\.txt \(http:\/\/127\.0\.0\.1:\d+\/robots\.txt\) specifies that autonomous fetching of this page is not allowed \(rule "Disallow: \/private"\)/,
    );
    assert.match(text, /ignore_robots_txt/);
    assert.deepEqual(server.hits, ["/robots.txt"]);
    const open = await callFetch(client, { url: `${server.origin}/public` });
    assert.equal(open.isError, false);
    assert.match(open.text, /page \/public$/);
  });

  test("ignoreRobotsTxt skips the check", async () => {
    robotsStatus = 200;
    const client = await connect({ allowHosts: ["127.0.0.1"], ignoreRobotsTxt: true });
    server.hits.length = 0;
    const { text, isError } = await callFetch(client, { url: `${server.origin}/private/page` });
    assert.equal(isError, false);
    assert.match(text, /page \/private\/page$/);
    assert.deepEqual(server.hits, ["/private/page"]);
  });

  test("a 404 robots.txt allows everything; 401, 403 and 5xx refuse", async () => {
    const client = await connect({ allowHosts: ["127.0.0.1"] });
    robotsStatus = 404;
    assert.equal((await callFetch(client, { url: `${server.origin}/private/page` })).isError, false);
    for (const status of [401, 403, 503]) {
      robotsStatus = status;
      const { text, isError } = await callFetch(client, { url: `${server.origin}/any` });
      assert.equal(isError, true);
      assert.match(text, new RegExp(`received status ${status} so assuming that autonomous fetching is not allowed`));
    }
  });
});

test("stripScriptsAndStyles removes scripts, styles and comments like the HTML parser would", () => {
  assert.equal(stripScriptsAndStyles("a<script>x</script>b<STYLE media=x>y</style >c"), "abc");
  assert.equal(stripScriptsAndStyles('a<script>var s = "<b>";</script>b'), "ab");
  assert.equal(stripScriptsAndStyles("a<!-- <script> -->b<p>c</p>"), "ab<p>c</p>", "a tag in a comment is no tag");
  assert.equal(stripScriptsAndStyles("a<script>never closed <p>x</p>"), "a");
  const jsonLd = '<script type="application/ld+json">{"headline":"T"}</script>';
  assert.equal(stripScriptsAndStyles(`a${jsonLd}b`), `a${jsonLd}b`);
  assert.equal(stripScriptsAndStyles("<scripts>kept</scripts>"), "<scripts>kept</scripts>");
  assert.equal(stripScriptsAndStyles("a<script<b>c</script>d"), "ad");
  const hostile = "<script".repeat(300_000) + "</script".repeat(300_000) + "<!--".repeat(300_000);
  const started = Date.now();
  stripScriptsAndStyles(hostile);
  assert.ok(Date.now() - started < 1000, "no quadratic blow-up");
});
