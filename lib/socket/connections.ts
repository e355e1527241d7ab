// The WebSocket side: upgrades on /ws/<user_id>, per-user socket quotas, each socket's session,
// and the heartbeat that finds dead peers. It owns every socket from the upgrade to its close.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Config } from "../config.ts";
import type { Logger, Redactor } from "../log.ts";
import type { MetricsRecorder } from "../metrics/metrics.ts";
import { rawPathname, refusalHeaders } from "../http/access.ts";
import { clientAddress, trustedProxies } from "../http/client-address.ts";
import { GIVE_BACK_GRACE_MS } from "../http/give-back.ts";
import { rejectUpgrade } from "../http/routes.ts";
import { AdmissionRefused } from "../session/admission.ts";
import { closeReason, errorAnswer, errorFrame, streamWelcomeFrame, welcomeFrame, type Refusal } from "../protocol.ts";
import { dispatchFrame, type SocketSession } from "./dispatch.ts";
import type { Peer } from "../session/fanout.ts";
import { SocketPeer } from "./peer.ts";
import { decideUpgrade, type UpgradeDecision } from "./upgrade.ts";

/** Close code for "going away": the server is shutting down. */
const CLOSE_GOING_AWAY = 1001;
/** Close code for "internal error": the session could not be opened (e.g. the store failed). */
const CLOSE_INTERNAL_ERROR = 1011;
/** Close code for "policy violation": too many refused frames. */
const CLOSE_POLICY_VIOLATION = 1008;
/** Close code for "try again later": a quota is full. */
const CLOSE_TRY_AGAIN_LATER = 1013;

/** A user's session as its sockets need it (UserSession in session.ts). */
export interface ConnectedSession extends SocketSession {
  attach(peer: Peer): void;
  detach(peer: Peer): void;
  readonly sockets: { readonly size: number };
}

/** The live sessions, as the socket side needs them (SessionManager in session.ts). */
export interface SocketSessions {
  /** Live sessions, counting those being opened (for the max_sessions quota). */
  readonly size: number;
  has(userId: string): boolean;
  /** Sessions that hold resources (ran a turn, or hold children): what limits.max_sessions counts. */
  heldCount(): number;
  /** Whether an idle session (no socket, no turn) could sleep to make room for a newcomer. */
  canMakeRoom(): boolean;
  /** `remoteAddress`: new sessions are rate-limited per address (returning users are not). */
  open(userId: string, remoteAddress?: string): Promise<ConnectedSession>;
}

/**
 * Closes with a code and reason, and terminates the socket if the client does not complete the
 * close handshake within the grace (ws alone would wait 30 s, holding the descriptor).
 */
function closeThenTerminate(ws: WebSocket, code: number, reason: string): void {
  ws.close(code, reason);
  const timer = setTimeout(() => ws.terminate(), GIVE_BACK_GRACE_MS);
  timer.unref();
  ws.once("close", () => clearTimeout(timer));
}

export interface SocketServerOptions {
  config: Config;
  bindHost: string;
  sessions: SocketSessions;
  log: Logger;
  redactor: Redactor;
  metrics: MetricsRecorder;
  auth: Authenticator;
}

export class SocketServer {
  readonly #options: SocketServerOptions;
  readonly #wss: WebSocketServer;
  readonly #peers = new Set<SocketPeer>();
  /** Open sockets per user, counted from the upgrade on (a session may still be loading). */
  readonly #socketsPerUser = new Map<string, number>();
  /** Open sockets per remote address (limits.max_sockets_per_address). */
  readonly #socketsPerAddress = new Map<string, number>();
  readonly #isTrustedProxy: (address: string) => boolean;
  readonly #heartbeat: NodeJS.Timeout;
  #nextPeerId = 1;

  constructor(options: SocketServerOptions) {
    this.#options = options;
    const { limits, server } = options.config;
    this.#isTrustedProxy = trustedProxies(server.trusted_proxies);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: limits.max_payload_bytes, perMessageDeflate: false });
    // A peer that did not answer the last ping within an interval is gone (laptop lid closed,
    // network dropped) and is terminated so its session can be swept.
    this.#heartbeat = setInterval(() => {
      for (const peer of this.#peers) if (!peer.heartbeat()) options.log.info("socket_timeout", { socket: peer.id });
    }, server.ping_interval_seconds * 1000);
    this.#heartbeat.unref();
  }

  /** Open sockets on this instance (for the metrics). */
  get openSockets(): number {
    return this.#peers.size;
  }

  /** The http server's `upgrade` event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    decideUpgrade(req, this.#options.config.server, this.#options.bindHost, this.#options.auth).then(
      (decision) => this.#afterDecision(req, socket, head, decision),
      (error: unknown) => {
        this.#options.log.error("upgrade_check_failed", { error, path: rawPathname(req.url) });
        rejectUpgrade(socket, 500, errorAnswer({ code: "internal_error", error: "the server could not check this request" }));
      },
    );
  }

  #afterDecision(req: IncomingMessage, socket: Duplex, head: Buffer, decision: UpgradeDecision): void {
    // The client may have gone while its token was checked.
    if (socket.destroyed) return;
    if (!decision.ok) {
      this.#options.log.warn("upgrade_refused", { status: decision.status, error: decision.error, path: rawPathname(req.url) });
      return rejectUpgrade(socket, decision.status, errorAnswer(decision), refusalHeaders(decision));
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) =>
      this.#onConnection(
        ws,
        decision.userId,
        decision.streaming,
        clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"], this.#isTrustedProxy),
      ),
    );
  }

  /** Quotas are told over the socket (close 1013 "try again later", the reason "<code>: <text>"), not as HTTP. */
  #quotaRefusal(userId: string, address: string): Refusal | undefined {
    const { sessions } = this.#options;
    const { limits } = this.#options.config;
    const held = sessions.has(userId) ? 0 : sessions.heldCount();
    // Full: an idle session sleeps when this one needs the room (lib/session/admission.ts).
    if (held >= limits.max_sessions && !sessions.canMakeRoom()) {
      return { code: "too_many_sessions", error: `server full: ${held} sessions in use, none idle (limits.max_sessions)` };
    }
    const open = this.#socketsPerUser.get(userId) ?? 0;
    if (open >= limits.max_sockets_per_user) {
      return { code: "too_many_sockets", error: `too many sockets for this user: ${open} open (limits.max_sockets_per_user)` };
    }
    const fromAddress = this.#socketsPerAddress.get(address) ?? 0;
    if (fromAddress >= limits.max_sockets_per_address) {
      return {
        code: "too_many_sockets",
        error: `too many sockets from your address: ${fromAddress} open (limits.max_sockets_per_address)`,
      };
    }
    return undefined;
  }

  #refuseConnection(ws: WebSocket, refusal: Refusal, fields: Record<string, unknown>): void {
    this.#options.log.warn("connect_refused", { ...fields, code: refusal.code, reason: refusal.error });
    this.#options.metrics.refused(refusal.code);
    closeThenTerminate(ws, CLOSE_TRY_AGAIN_LATER, closeReason(refusal));
  }

  #onConnection(ws: WebSocket, userId: string, streaming: boolean, remoteAddress: string): void {
    const { log, sessions, redactor, config } = this.#options;
    const { limits } = config;
    // Malformed frames (bad UTF-8, oversize, reserved bits) end up here: ws closes that socket with
    // the right code; the process must never see them as an uncaught error.
    ws.on("error", (error) => log.warn("socket_error", { user_id: userId, error: error.message }));
    const refusal = this.#quotaRefusal(userId, remoteAddress);
    if (refusal) return this.#refuseConnection(ws, refusal, { user_id: userId });
    this.#socketsPerUser.set(userId, (this.#socketsPerUser.get(userId) ?? 0) + 1);
    this.#socketsPerAddress.set(remoteAddress, (this.#socketsPerAddress.get(remoteAddress) ?? 0) + 1);
    const id = this.#nextPeerId++;
    const fields = { user_id: userId, socket: id, streaming };
    const peer = new SocketPeer({
      id,
      ws,
      streaming,
      limits: { softBytes: limits.send_buffer_soft_bytes, hardBytes: limits.send_buffer_hard_bytes },
      onDrop: (bufferedBytes) => log.warn("slow_socket_dropped", { ...fields, buffered_bytes: bufferedBytes }),
      redactor,
    });
    this.#peers.add(peer);
    // Frames that arrive while the session loads wait for it, in arrival order.
    const ready: Promise<ConnectedSession | undefined> = sessions.open(userId, remoteAddress).then(
      (session) => {
        if (ws.readyState !== ws.OPEN) return session;
        peer.send(streaming ? streamWelcomeFrame(userId, session.sessionId) : welcomeFrame(userId, session.sessionId));
        session.attach(peer);
        log.info("connect", { ...fields, session_id: session.sessionId, open_sockets: session.sockets.size });
        return session;
      },
      (error: unknown) => {
        if (error instanceof AdmissionRefused) {
          this.#refuseConnection(ws, { code: "too_many_new_sessions", error: error.message }, fields);
          return undefined;
        }
        const reason = redactor.redact((error as Error).message);
        log.error("session_open_failed", { ...fields, error: reason });
        peer.send(errorFrame("server_unavailable", `Session error: ${reason}`));
        closeThenTerminate(ws, CLOSE_INTERNAL_ERROR, closeReason({ code: "server_unavailable", error: "session error" }));
        return undefined;
      },
    );
    const context = { log, limits, redactor, metrics: this.#options.metrics };
    // Frames refused (too long, malformed, binary): past limits.max_refused_frames_per_socket the
    // socket is closed, so a client cannot keep the server refusing for it.
    let refused = 0;
    ws.on("message", (data: RawData, isBinary: boolean) => {
      void ready.then((session) => {
        if (!session) return;
        // A frame that arrived before the client closed still counts (a CLI sends cancel, then leaves).
        if (dispatchFrame(session, peer, data, isBinary, context) !== "refused" || ws.readyState !== ws.OPEN) return;
        if (++refused < limits.max_refused_frames_per_socket) return;
        log.warn("socket_closed_for_refusals", { ...fields, refused });
        this.#options.metrics.refused("invalid_frame");
        closeThenTerminate(ws, CLOSE_POLICY_VIOLATION, `too many refused frames: ${refused} (limits.max_refused_frames_per_socket)`);
      });
    });
    ws.on("close", (code) => {
      this.#peers.delete(peer);
      const left = (this.#socketsPerUser.get(userId) ?? 1) - 1;
      if (left > 0) this.#socketsPerUser.set(userId, left);
      else this.#socketsPerUser.delete(userId);
      const fromAddress = (this.#socketsPerAddress.get(remoteAddress) ?? 1) - 1;
      if (fromAddress > 0) this.#socketsPerAddress.set(remoteAddress, fromAddress);
      else this.#socketsPerAddress.delete(remoteAddress);
      void ready.then((session) => {
        session?.detach(peer);
        log.info("disconnect", { ...fields, code, open_sockets: session?.sockets.size ?? 0 });
      });
    });
  }

  /** Asks every socket to close (1001); `terminate()` then ends those that did not. */
  closeAll(): void {
    clearInterval(this.#heartbeat);
    for (const ws of this.#wss.clients) ws.close(CLOSE_GOING_AWAY, "server shutting down");
  }

  terminate(): void {
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
  }
}
