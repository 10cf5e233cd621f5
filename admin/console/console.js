/*
 * Supernet console: the administrator's web UI (docs/console.md). Plain
 * browser JavaScript modules, no framework, no build step. It talks only to
 * the admin service's operator API (/v1/...) with the console session
 * cookie, sending the CSRF token with every request that changes something.
 * This module: login, routing between pages, periodic refresh.
 */
/* global document, window, setTimeout, clearTimeout */
import { h, $, api, hooks, state, REFRESH_MS } from './ui.js';
import { supernetView } from './supernet.js';
import { overviewView, auditView, policyView } from './pages.js';

// ---- login ----------------------------------------------------------------------------------

function showLogin(message) {
  stopRefresh();
  state.csrf = null;
  $('top').hidden = true;
  const err = h('p', { class: 'error', id: 'login-error' }, message || '');
  const token = h('input', {
    type: 'password',
    id: 'token',
    name: 'token',
    autocomplete: 'current-password',
    required: true,
  });
  const f = h(
    'form',
    {},
    h('label', { for: 'token' }, 'Operator token', token),
    h('button', { type: 'submit' }, 'Log in'),
    err,
  );
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const s = await api('POST', '/console/api/login', { token: token.value });
      state.csrf = s.csrf;
      token.value = '';
      route();
    } catch (e) {
      err.textContent = e.code === 'forbidden' ? 'That is not the operator token.' : e.message;
    }
  });
  $('main').replaceChildren(
    h(
      'div',
      { class: 'login' },
      h(
        'div',
        { class: 'card' },
        h('h1', {}, 'Supernet console'),
        h(
          'p',
          { class: 'muted' },
          'Log in with the operator token: the contents of ',
          h('code', {}, 'STATE/operator.token'),
          ' on the admin host.',
        ),
        f,
      ),
    ),
  );
  token.focus();
}

// ---- routing and refresh -----------------------------------------------------------------------

function stopRefresh() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

async function refreshNow() {
  stopRefresh();
  const view = state.view;
  const gen = state.gen;
  if (!view) return;
  try {
    await view.refresh();
    $('live').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e.status === 401) return;
    if (e.status === 404 && gen === state.gen) {
      $('main').replaceChildren(
        h('div', { class: 'banner bad' }, e.message),
        h('a', { href: '#/' }, '← all Supernets'),
      );
      state.view = null;
      return;
    }
    $('live').textContent = `refresh failed: ${e.message}`;
  }
  if (gen === state.gen && !document.hidden) state.timer = setTimeout(refreshNow, REFRESH_MS);
}

function route() {
  if (!state.csrf) return resume();
  $('top').hidden = false;
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const m = /^\/s\/([^/]+)$/.exec(hash);
  const view =
    hash === '/audit'
      ? auditView()
      : hash === '/policy'
        ? policyView()
        : m
          ? supernetView(decodeURIComponent(m[1]))
          : overviewView();
  state.gen++;
  state.view = view;
  for (const a of document.querySelectorAll('header nav a'))
    a.classList.toggle('active', a.dataset.nav === view.nav);
  $('main').replaceChildren(view.skeleton());
  refreshNow();
}

async function resume() {
  try {
    const s = await api('GET', '/console/api/session');
    state.csrf = s.csrf;
    route();
  } catch {
    showLogin('');
  }
}

window.addEventListener('hashchange', () => state.csrf && route());
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.view) refreshNow();
});
hooks.unauthorized = showLogin;
hooks.refresh = refreshNow;

document.addEventListener('DOMContentLoaded', () => {
  $('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/console/api/logout');
    } finally {
      showLogin('Logged out.');
    }
  });
  resume();
});
