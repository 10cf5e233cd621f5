/**
 * A deliberately small JSON body reader: the admin API takes only small JSON
 * objects, so it refuses everything else early and with a clear code —
 * a wrong content type (415), a body over the limit (413, checked against
 * Content-Length before reading and again while reading), bytes that are not
 * UTF-8 JSON (400 bad_json), or JSON that is not an object (400).
 */
import type { Context } from 'koa';
import { ApiError } from './errors.js';

/** Default body limit (64 KiB); a login request is under 2 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Reads and parses the request body of `ctx` as a JSON object. */
export async function readJsonBody(
  ctx: Context,
  limit = MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const type = (ctx.get('content-type') || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(
      415,
      'unsupported_media_type',
      `content-type: expected application/json, got ${type ? JSON.stringify(type) : 'none'}`,
    );
  }
  const declared = ctx.get('content-length');
  if (declared && Number(declared) > limit) {
    throw new ApiError(413, 'payload_too_large', `body: larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      // Stop reading; the connection is closed after the answer so the rest is not parsed as a new request.
      ctx.set('Connection', 'close');
      throw new ApiError(413, 'payload_too_large', `body: larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let value: unknown;
  try {
    value = JSON.parse(text.decode(Buffer.concat(chunks)));
  } catch {
    throw new ApiError(400, 'bad_json', 'body: not valid UTF-8 JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ApiError(400, 'bad_request', 'body: expected a JSON object');
  }
  return value as Record<string, unknown>;
}
