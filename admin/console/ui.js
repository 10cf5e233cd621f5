/*
 * Supernet console: the small toolkit every page uses — building elements
 * (values always go in as text, never as HTML), calling the operator API
 * with the session's CSRF token, forms, tables, the confirmation dialog.
 */
/* global document, window, fetch, setTimeout */

export const REFRESH_MS = 2000;
/** The page's state: the CSRF token of the session, the current view and its refresh timer. */
export const state = { csrf: null, timer: null, view: null, gen: 0 };
/** Set by console.js: what to do when the session ended, and how to refresh the current view now. */
export const hooks = { unauthorized: () => {}, refresh: () => {} };

// ---- small helpers -------------------------------------------------------------------

/** Builds an element: h('td', {class: 'num'}, 'text', child, ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof window.Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function $(id) {
  return document.getElementById(id);
}

export function toast(text, bad) {
  const t = h('div', { class: bad ? 'bad' : '' }, text);
  $('toast').append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 3500);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-Supernet-CSRF'] = state.csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = (json && json.error) || {};
    if (res.status === 401 && !path.endsWith('/login'))
      hooks.unauthorized('Your console session ended: log in again.');
    throw new ApiError(
      res.status,
      e.code || `http_${res.status}`,
      e.message || `HTTP ${res.status}`,
    );
  }
  return json;
}

export const v1 = (p) => `/v1${p}`;
export const sn = (sid, rest = '') => v1(`/supernets/${encodeURIComponent(sid)}${rest}`);

export function ago(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 10);
}

export function when(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '—';
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

export function rate(bps) {
  return bps === null || bps === undefined ? '' : `${((bps * 8) / 1000).toFixed(1)} kbit/s`;
}

export function endpoint(e) {
  if (!e) return h('span', { class: 'badge warn' }, 'expired');
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export function short(fp) {
  return fp ? h('span', { class: 'mono', title: fp }, `${fp.slice(0, 12)}…`) : '—';
}

export function list(s) {
  return String(s || '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

export function table(headers, rows, emptyText) {
  if (!rows.length) return h('p', { class: 'empty' }, emptyText);
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((c) => h('th', {}, c)),
      ),
    ),
    h('tbody', {}, rows),
  );
}

export function card(title, count, ...body) {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, title, count === null ? null : h('span', { class: 'count' }, String(count))),
    ...body,
  );
}

export function field(label, attrs) {
  return h('label', {}, label, h('input', attrs));
}

/** A form whose submit runs `fn(values)`; shows success or the server's message. */
export function form(fields, button, fn, okText) {
  const f = h('form', { class: 'inline' }, fields, h('button', { type: 'submit' }, button));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const values = Object.fromEntries(new window.FormData(f).entries());
    try {
      await fn(values, f);
      if (okText) toast(typeof okText === 'function' ? okText(values) : okText);
      f.reset();
      hooks.refresh();
    } catch (err) {
      toast(err.message, true);
    }
  });
  return f;
}

/** The confirmation dialog; `typed` = text the operator must type (dangerous actions). */
export function confirmDialog(title, text, okLabel, typed) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  const input = $('confirm-typed');
  $('confirm-typed-label').hidden = !typed;
  $('confirm-expect').textContent = typed || '';
  input.value = '';
  return new Promise((resolve) => {
    d.addEventListener(
      'close',
      () => resolve(d.returnValue === 'ok' && (!typed || input.value.trim() === typed)),
      { once: true },
    );
    d.returnValue = '';
    d.showModal();
    (typed ? input : $('confirm-ok')).focus();
  });
}

export const ACTION_CLASS = {
  admit: 'good',
  'grant-added': 'good',
  'storage-role-granted': 'good',
  'supernet-created': 'good',
  'channel-created': 'good',
  deny: 'bad',
  expel: 'bad',
  'supernet-dissolved': 'bad',
  'grant-revoked': 'warn',
  'storage-role-revoked': 'warn',
  'storage-reencrypted': 'good',
  'storage-reencrypt-claimed': 'warn',
  logout: 'warn',
};

// A view is {nav, skeleton(): Node, refresh(): Promise<void>}: the skeleton
// (with its forms) is built once; refresh() replaces only data sections, so
// polling never disturbs what the operator is typing.

export function slot() {
  return h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
}
