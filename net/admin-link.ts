/**
 * What the host agent needs from the admin service (paper §4.3: admission,
 * then asynchronous group-key and VARP traffic). A seam: the real one is
 * {@link httpAdminLink} over admin/client.ts; unit tests use an in-memory one.
 * Every config returned here has already had its signature checked against
 * the pinned admin key.
 */
import type { Identity } from '../admin/identity.js';
import type { Endpoint, NodeConfig } from '../admin/protocol.js';

export interface LoginFields {
  name: string;
  supernet: string;
  channels: string[];
  endpoint: Endpoint;
}

/** Events the agent reacts to; `resync` means "you may have missed something: fetch the config". */
export type LinkEvent =
  { kind: 'config'; serial: number } | { kind: 'expelled'; reason: string } | { kind: 'resync' };

/** The admin refused: `code` is the API's error code (e.g. `policy_denied`, `expelled`, `session_revoked`). */
export class AdminRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminRefusal';
  }
}

export interface AdminLink {
  login(identity: Identity, fields: LoginFields): Promise<{ token: string; config: NodeConfig }>;
  /** `resync`: also fetch the node's key-tree welcomes (its keys fell behind). */
  config(token: string, resync?: boolean): Promise<NodeConfig>;
  register(token: string, endpoint: Endpoint): Promise<void>;
  logout(token: string): Promise<void>;
  /** Reports the node's traffic counters (telemetry for the console, net/stats-report.ts); optional. */
  report?(token: string, stats: { host: string; counters: Record<string, number> }): Promise<void>;
  /** Subscribes to the node's events until `signal` aborts; reconnects by itself and emits `resync` after each reconnect. */
  events(token: string, onEvent: (e: LinkEvent) => void, signal: AbortSignal): void;
}
