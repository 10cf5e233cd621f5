/**
 * Typed, coded errors of the admin HTTP API and the one Koa middleware that
 * turns every failure into an {@link ApiErrorBody}.
 *
 * A handler throws `new ApiError(status, code, message)`; the message names
 * the field or rule that was wrong and is shown to the caller. Anything else
 * that escapes a handler is a bug: the caller sees only
 * `500 {code:'internal', message:'internal error'}` and the details go to the
 * injected logger, never to the wire.
 */
import type { Context, Next } from 'koa';
import type { ApiErrorBody } from './protocol.js';
import type { Logger } from './logger.js';
import { IdError } from './ids.js';

/** Error codes the API answers with (docs/admin-api.md §Errors). */
export type ApiErrorCode =
  | 'bad_request'
  | 'bad_json'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'not_found'
  | 'method_not_allowed'
  | 'unauthorized'
  | 'forbidden'
  | 'session_revoked'
  | 'expelled'
  | 'bad_signature'
  | 'challenge_invalid'
  | 'too_many_challenges'
  | 'policy_denied'
  | 'unknown_supernet'
  | 'unknown_channel'
  | 'unknown_node'
  | 'supernet_exists'
  | 'channel_exists'
  | 'name_taken'
  | 'vip_taken'
  | 'pool_exhausted'
  | 'role_exists'
  | 'conflict'
  | 'too_many_attempts'
  | 'store_unavailable'
  | 'shutting_down'
  | 'internal';

/** An error whose status, code and message are meant for the API caller. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): ApiErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

/** 400 bad_request for a field that failed validation; `field` is its path (e.g. `request.endpoint.port`). */
export function badField(field: string, problem: string): ApiError {
  return new ApiError(400, 'bad_request', `${field}: ${problem}`);
}

/** Converts an {@link IdError} (whose message already names the field) to a 400. */
export function fromIdError(err: unknown): never {
  if (err instanceof IdError) throw new ApiError(400, 'bad_request', err.message);
  throw err;
}

/**
 * The central error handler. Mount it first. Also turns an unmatched route
 * (Koa's default 404 with no body) into a coded 404.
 */
export function errorHandler(logger: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined && ctx.respond !== false) {
        throw new ApiError(404, 'not_found', `no route ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      const api = toApiError(err);
      if (api.status >= 500) {
        logger.error('request failed', {
          method: ctx.method,
          path: ctx.path,
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        });
      } else {
        logger.debug('request refused', {
          method: ctx.method,
          path: ctx.path,
          status: api.status,
          code: api.code,
          message: api.message,
        });
      }
      if (ctx.headerSent || !ctx.writable) return;
      ctx.status = api.status;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = api.toBody();
    }
  };
}

/** Maps anything thrown to the ApiError the caller sees. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof IdError) return new ApiError(400, 'bad_request', err.message);
  // Errors raised by Koa/router themselves (e.g. 405 from allowedMethods) carry an
  // `expose`d status; keep their status but use our own wording.
  const e = err as { status?: unknown; expose?: unknown } | null;
  if (e && typeof e.status === 'number' && e.expose === true && e.status < 500) {
    if (e.status === 405) return new ApiError(405, 'method_not_allowed', 'method not allowed');
    if (e.status === 404) return new ApiError(404, 'not_found', 'not found');
    return new ApiError(e.status, 'bad_request', 'bad request');
  }
  return new ApiError(500, 'internal', 'internal error');
}
