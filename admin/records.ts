/**
 * The records the admin service keeps in its store (admin/store.ts), and
 * the small lookups shared by the modules that use them.
 */
import type { Endpoint } from './protocol.js';
import type { ReadTx } from './store.js';
import { ApiError } from './errors.js';

/** Collection `supernets`, key = canonical id. */
export interface SupernetRecord {
  id: string;
  name: string | null;
  pool: string;
  channels: Array<{ id: string; createdAt: number }>;
  /** Grows with every change that concerns the Supernet's nodes. */
  serial: number;
  createdAt: number;
}

/** Collection `nodes`, key `<supernet>|<name>`: an admitted node. */
export interface NodeRecord {
  supernet: string;
  name: string;
  id: string;
  sign: string;
  seal: string;
  vip: string;
  channels: string[];
  /** sha256 of the current session token. */
  session: string;
  rule: string;
  admittedAt: number;
  loginAt: number;
}

/** A node's own view for the operator. */
export interface NodeSummary {
  name: string;
  id: string;
  vip: string;
  channels: string[];
  endpoint: Endpoint | null;
  expiresAt: number;
  admittedAt: number;
  loginAt: number;
  rule: string;
}

/** Store key of a node: `<supernet>|<name>`. */
export const nodeKey = (sid: string, name: string): string => `${sid}|${name}`;

/** The Supernet `sid`, or a 404 naming `field`. */
export function getSupernet(tx: ReadTx, sid: string, field = 'supernet'): SupernetRecord {
  const sn = tx.get<SupernetRecord>('supernets', sid);
  if (!sn) throw new ApiError(404, 'unknown_supernet', `${field}: no Supernet ${sid}`);
  return sn;
}
