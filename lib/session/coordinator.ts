// The seam between a user's session and the other server instances that may serve the same user.
// A session asks for a turn lease before each turn and hears about the user's activity elsewhere
// through one interface; on a single instance (LocalCoordinator) the lease is never contested and
// nothing travels, so the session has one code path whatever the deployment.
import type { ElicitationAction, ElicitationValue, StreamFrame } from "../protocol.ts";
import type { Fence } from "../store/store.ts";
import type { TraceCarrier } from "../telemetry/tracer.ts";

/**
 * What a session tells the user's sessions on other instances, and hears from them. `trace`: the
 * W3C context of the span it belongs to (a running turn's frames, an approval answered
 * elsewhere), so the spans of one turn on two instances share one trace.
 */
export type CoordinatorMessage = (
  | { kind: "frame"; frame: StreamFrame }
  /** Names the turn it stops: a cancel meant for one turn never stops another. */
  | { kind: "cancel"; turn_id: string }
  | { kind: "approval"; call_id: string; approved: boolean; reason?: string; always: boolean; socket: number }
  | {
      kind: "elicitation";
      request_id: string;
      action: ElicitationAction;
      content?: Record<string, ElicitationValue>;
      socket: number;
    }
) & { trace?: TraceCarrier };

export interface TurnLease {
  /** Carried by the turn's writes so a store shared with other instances refuses stale ones. */
  readonly fence: Fence | undefined;
  /** Other instances may have written this user's history since it was last read: reload it first. */
  readonly historyStale: boolean;
  /** Aborted when the lease is lost (e.g. taken over elsewhere): the turn must stop. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

export interface Coordinator {
  /** Whether other instances may serve the same user: their turns, history writes and approval answers. */
  readonly spansInstances: boolean;
  /** Waits until this instance may run a turn of the user; a cancelled wait rejects. */
  acquire(userId: string, signal: AbortSignal): Promise<TurnLease>;
  /** Best effort: tells the user's sessions elsewhere. */
  publish(userId: string, message: CoordinatorMessage): void;
  /** Starts hearing the user's messages from elsewhere, while the session is live here. */
  join(userId: string, onMessage: (message: CoordinatorMessage) => void): Promise<void>;
  leave(userId: string): Promise<void>;
}

const NEVER_LOST = new AbortController().signal;
const LOCAL_LEASE: TurnLease = { fence: undefined, historyStale: false, lost: NEVER_LOST, release: () => Promise.resolve() };

/** One instance: the session's own queue already runs one turn at a time, so the lease is free. */
export class LocalCoordinator implements Coordinator {
  readonly spansInstances = false;

  acquire(_userId: string, signal: AbortSignal): Promise<TurnLease> {
    return signal.aborted ? Promise.reject(signal.reason as Error) : Promise.resolve(LOCAL_LEASE);
  }

  publish(): void {}

  join(): Promise<void> {
    return Promise.resolve();
  }

  leave(): Promise<void> {
    return Promise.resolve();
  }
}
