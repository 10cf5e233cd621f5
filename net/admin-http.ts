/**
 * The host agent's {@link AdminLink} over HTTP: a thin adapter over
 * admin/client.ts, which verifies every config against the PINNED admin
 * signing key and unseals the session token with the node's identity.
 */
import { AdminApiError, AdminClient } from '../admin/client.js';
import type { Identity } from '../admin/identity.js';
import type { Logger } from '../admin/logger.js';
import { AdminRefusal, type AdminLink, type LinkEvent, type LoginFields } from './admin-link.js';

/** Turns the client's API errors into the agent's {@link AdminRefusal}; other errors pass through. */
async function refusals<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof AdminApiError) throw new AdminRefusal(err.status, err.code, err.message);
    throw err;
  }
}

/** An {@link AdminLink} to the admin service at `base` whose signing key is `adminSign`. */
export function httpAdminLink(base: string, adminSign: string, logger: Logger): AdminLink {
  const client = new AdminClient(base, { adminSign });
  return {
    async login(identity: Identity, f: LoginFields) {
      const { token, config } = await refusals(client.login(identity, f));
      return { token, config };
    },
    async config(token, resync) {
      return (await refusals(client.config(token, resync))).config;
    },
    async register(token, endpoint) {
      await refusals(client.register(token, endpoint));
    },
    async logout(token) {
      await refusals(client.logout(token));
    },
    async report(token, stats) {
      await refusals(client.reportStats(token, stats));
    },
    events(token, onEvent: (e: LinkEvent) => void, signal: AbortSignal) {
      // The first (re)connection also counts as a resync: pushes made before
      // it could not reach us.
      onEvent({ kind: 'resync' });
      client
        .events(
          token,
          (e) => {
            if (e.event === 'config') onEvent({ kind: 'config', serial: e.data.serial });
            else if (e.event === 'expelled') onEvent({ kind: 'expelled', reason: e.data.reason });
            else onEvent({ kind: 'resync' });
          },
          { signal, minBackoffMs: 250, maxBackoffMs: 5000, idleTimeoutMs: 45_000 },
        )
        .catch((err: unknown) => {
          if (err instanceof AdminApiError && err.status === 401) {
            onEvent({ kind: 'expelled', reason: `${err.code}: ${err.message}` });
          } else {
            logger.warn('admin event stream ended', { err: String(err) });
          }
        });
    },
  };
}
