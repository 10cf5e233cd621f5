/*
 * Supernet console: the administrator's web UI (docs/console.md). Plain
 * browser JavaScript, no framework, no build step. It talks only to the
 * admin service's operator API (/v1/...) with the console session cookie,
 * sending the CSRF token with every request that changes something.
 * Every value from the server is put into the page as text (never as HTML).
 */
/* global document, window, fetch, setTimeout, clearTimeout */
'use strict';

const REFRESH_MS = 2000;
const state = { csrf: null, timer: null, view: null, gen: 0 };

// ---- small helpers -------------------------------------------------------------------

/** Builds an element: h('td', {class: 'num'}, 'text', child, ...). */
function h(tag, attrs, ...children) {
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

function $(id) {
  return document.getElementById(id);
}

function toast(text, bad) {
  const t = h('div', { class: bad ? 'bad' : '' }, text);
  $('toast').append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 3500);
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
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
      showLogin('Your console session ended: log in again.');
    throw new ApiError(
      res.status,
      e.code || `http_${res.status}`,
      e.message || `HTTP ${res.status}`,
    );
  }
  return json;
}

const v1 = (p) => `/v1${p}`;
const sn = (sid, rest = '') => v1(`/supernets/${encodeURIComponent(sid)}${rest}`);

function ago(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toISOString().slice(0, 10);
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '—';
}

function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

function rate(bps) {
  return bps === null || bps === undefined ? '' : `${((bps * 8) / 1000).toFixed(1)} kbit/s`;
}

function endpoint(e) {
  if (!e) return h('span', { class: 'badge warn' }, 'expired');
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

function short(fp) {
  return fp ? h('span', { class: 'mono', title: fp }, `${fp.slice(0, 12)}…`) : '—';
}

function list(s) {
  return String(s || '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

function table(headers, rows, emptyText) {
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

function card(title, count, ...body) {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, title, count === null ? null : h('span', { class: 'count' }, String(count))),
    ...body,
  );
}

function field(label, attrs) {
  return h('label', {}, label, h('input', attrs));
}

/** A form whose submit runs `fn(values)`; shows success or the server's message. */
function form(fields, button, fn, okText) {
  const f = h('form', { class: 'inline' }, fields, h('button', { type: 'submit' }, button));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const values = Object.fromEntries(new window.FormData(f).entries());
    try {
      await fn(values, f);
      if (okText) toast(typeof okText === 'function' ? okText(values) : okText);
      f.reset();
      refreshNow();
    } catch (err) {
      toast(err.message, true);
    }
  });
  return f;
}

/** The confirmation dialog; `typed` = text the operator must type (dangerous actions). */
function confirmDialog(title, text, okLabel, typed) {
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

const ACTION_CLASS = {
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
  logout: 'warn',
};

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

// ---- views ------------------------------------------------------------------------------------
// A view is {title, skeleton(): Node, refresh(): Promise<void>}: the skeleton
// (with its forms) is built once; refresh() replaces only data sections, so
// polling never disturbs what the operator is typing.

function slot() {
  return h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
}

function overviewView() {
  const policy = slot();
  const supernets = slot();
  const create = form(
    [
      field('Supernet id', { name: 'id', placeholder: '0x4711', required: true }),
      field('Address pool', { name: 'pool', placeholder: '10.71.17.0/24', required: true }),
      field('Channels', { name: 'channels', placeholder: '0x01,0x123' }),
      field('Name', { name: 'name', placeholder: 'optional' }),
    ],
    'Create Supernet',
    (v) =>
      api('POST', v1('/supernets'), {
        id: v.id,
        pool: v.pool,
        channels: list(v.channels),
        ...(v.name ? { name: v.name } : {}),
      }),
    (v) => `Created Supernet ${v.id}`,
  );
  return {
    nav: 'overview',
    skeleton: () =>
      h(
        'div',
        {},
        h('h1', {}, 'Supernets'),
        h('p', { class: 'sub' }, 'Private virtual networks administered by this service.'),
        policy,
        card('Supernets', null, supernets, create),
      ),
    async refresh() {
      const [list_, pol] = await Promise.all([
        api('GET', v1('/supernets')),
        api('GET', v1('/policy/status')),
      ]);
      const counts = await Promise.all(
        list_.supernets.map((s) => api('GET', sn(s.id, '/nodes')).then((r) => r.nodes.length)),
      );
      policy.replaceChildren(
        pol.refused
          ? h(
              'div',
              { class: 'banner bad' },
              'The policy file on disk was refused; the previous policy stays in force: ',
              h('span', { class: 'mono' }, pol.refused.error),
            )
          : '',
      );
      supernets.replaceChildren(
        table(
          ['Supernet', 'Name', 'Pool', 'Channels', 'Nodes', 'Serial', 'Created'],
          list_.supernets.map((s, i) =>
            h(
              'tr',
              {},
              h('td', {}, h('a', { href: `#/s/${s.id}` }, s.id)),
              h('td', {}, s.name || '—'),
              h('td', { class: 'mono' }, s.pool),
              h('td', {}, s.channels.map((c) => c.id).join(', ') || '—'),
              h('td', { class: 'num' }, counts[i]),
              h('td', { class: 'num' }, s.serial),
              h('td', {}, when(s.createdAt)),
            ),
          ),
          'No Supernets yet: create one below.',
        ),
      );
    },
  };
}

function supernetView(sid) {
  const head = slot();
  const nodes = slot();
  const channels = slot();
  const pending = slot();
  const grants = slot();
  const varp = slot();
  const storage = slot();

  const admitForm = form(
    [
      field('Node name', { name: 'node', placeholder: 'd1', required: true }),
      field('Identity fingerprint', {
        name: 'identity',
        class: 'wide',
        required: true,
        pattern: '[0-9a-fA-F]{32}',
      }),
      field('Channels', { name: 'channels', placeholder: '0x01,0x123', required: true }),
      field('Fixed address', { name: 'address', placeholder: 'optional' }),
      field('Comment', { name: 'comment', placeholder: 'optional' }),
    ],
    'Admit node',
    (v) =>
      api('POST', sn(sid, '/grants'), {
        node: v.node,
        identity: v.identity,
        channels: list(v.channels),
        ...(v.address ? { address: v.address } : {}),
        ...(v.comment ? { comment: v.comment } : {}),
      }),
    (v) => `Admitted ${v.node}: it joins at its next login`,
  );
  const fill = (p) => {
    admitForm.elements.node.value = p.node;
    admitForm.elements.identity.value = p.identity;
    admitForm.elements.channels.value = p.channels.join(',');
    admitForm.elements.node.focus();
  };

  const actions = {
    async expel(name) {
      if (
        !(await confirmDialog(
          `Expel ${name}?`,
          `${name} leaves every channel now (each is rekeyed) and its session ends. It may log in again if the policy or an admission allows it.`,
          'Expel',
        ))
      )
        return;
      await api('POST', sn(sid, `/nodes/${encodeURIComponent(name)}/expel`), {
        reason: 'expelled in the console',
      });
      toast(`Expelled ${name}`);
    },
    async revoke(node) {
      if (
        !(await confirmDialog(
          `Revoke the admission of ${node}?`,
          'Its next login is refused. A node that is logged in stays until expelled.',
          'Revoke',
        ))
      )
        return;
      await api('DELETE', sn(sid, `/grants/${encodeURIComponent(node)}`));
      toast(`Revoked the admission of ${node}`);
    },
    async unrole(volume, node) {
      if (
        !(await confirmDialog(
          `Revoke ${node}'s storage role on ${volume}?`,
          'The volume then needs re-encryption so that nothing the ex-member knew decrypts it.',
          'Revoke',
        ))
      )
        return;
      await api(
        'DELETE',
        sn(sid, `/storage/roles/${encodeURIComponent(volume)}/${encodeURIComponent(node)}`),
      );
      toast(`Revoked ${node}'s role on ${volume}`);
    },
    async dissolve() {
      if (
        !(await confirmDialog(
          `Dissolve Supernet ${sid}?`,
          'Every node is logged out and loses connectivity, every channel key is destroyed, admissions and storage roles go. This cannot be undone.',
          'Dissolve',
          sid,
        ))
      )
        return;
      const r = await api('POST', sn(sid, '/dissolve'), { reason: 'dissolved in the console' });
      toast(`Dissolved ${sid}: ${r.nodes.length} nodes logged out, keys destroyed`);
      window.location.hash = '#/';
    },
  };
  const act =
    (fn, ...args) =>
    async () => {
      try {
        await fn(...args);
        refreshNow();
      } catch (e) {
        toast(e.message, true);
      }
    };

  const channelForm = form(
    [field('Channel id', { name: 'id', placeholder: '0x02', required: true })],
    'Create channel',
    (v) => api('POST', sn(sid, '/channels'), { id: v.id }),
    (v) => `Created channel ${v.id}`,
  );
  const roleForm = form(
    [
      field('Volume', { name: 'volume', placeholder: 'home', required: true }),
      field('Node', { name: 'node', required: true }),
    ],
    'Grant storage role',
    (v) => api('POST', sn(sid, '/storage/roles'), { volume: v.volume, node: v.node }),
    (v) => `${v.node} holds the storage role of ${v.volume}`,
  );

  return {
    nav: 'overview',
    skeleton: () =>
      h(
        'div',
        {},
        head,
        card('Nodes', null, nodes),
        h(
          'div',
          { class: 'grid' },
          card('Channels and key epochs', null, channels, channelForm),
          card('Admissions', null, pending, grants, admitForm),
        ),
        h(
          'div',
          { class: 'grid' },
          card('VARP table', null, varp),
          card('Storage volumes', null, storage, roleForm),
        ),
        h(
          'section',
          { class: 'card danger-zone' },
          h('h2', {}, 'Dissolve'),
          h(
            'p',
            { class: 'muted' },
            'Logs out every node of this Supernet and destroys its keys; audited.',
          ),
          h(
            'button',
            { class: 'danger', type: 'button', onclick: act(actions.dissolve) },
            'Dissolve Supernet',
          ),
        ),
      ),
    async refresh() {
      const [d, live, pend, gr, vp, st] = await Promise.all([
        api('GET', sn(sid)),
        api('GET', sn(sid, '/live')),
        api('GET', sn(sid, '/pending')),
        api('GET', sn(sid, '/grants')),
        api('GET', sn(sid, '/varp')),
        api('GET', sn(sid, '/storage')),
      ]);
      head.replaceChildren(
        h(
          'h1',
          {},
          `Supernet ${d.id}`,
          d.name ? h('span', { class: 'muted' }, ` — ${d.name}`) : '',
        ),
        h(
          'p',
          { class: 'sub' },
          `pool ${d.pool} · services address ${d.reservedVip} · config serial ${d.serial} · created ${when(d.createdAt)}`,
        ),
      );
      nodes.replaceChildren(
        table(
          [
            'Node',
            'Host',
            'Virtual address',
            'Physical address',
            'Channels',
            'Status',
            'Sent',
            'Received',
            'Rule',
            '',
          ],
          live.nodes.map((n) =>
            h(
              'tr',
              { 'data-node': n.name },
              h('td', {}, h('strong', {}, n.name), h('div', { class: 'details' }, short(n.id))),
              h('td', {}, n.host || '—'),
              h('td', { class: 'mono' }, n.vip),
              h('td', { class: 'mono' }, endpoint(n.endpoint)),
              h('td', {}, n.channels.join(', ')),
              h(
                'td',
                {},
                h('span', { class: n.online ? 'dot on' : 'dot' }),
                n.online ? 'online' : 'offline',
                h('div', { class: 'details' }, `last seen ${ago(n.lastSeen ?? n.loginAt)}`),
              ),
              h(
                'td',
                { class: 'num' },
                n.traffic ? bytes(n.traffic.txBytes) : '—',
                h('div', { class: 'details' }, rate(n.txRate)),
              ),
              h(
                'td',
                { class: 'num' },
                n.traffic ? bytes(n.traffic.rxBytes) : '—',
                h('div', { class: 'details' }, rate(n.rxRate)),
              ),
              h('td', {}, h('span', { class: 'badge' }, n.rule)),
              h(
                'td',
                { class: 'actions-cell' },
                h(
                  'button',
                  {
                    class: 'small danger ghost',
                    type: 'button',
                    onclick: act(actions.expel, n.name),
                  },
                  'Expel',
                ),
              ),
            ),
          ),
          'No node is admitted.',
        ),
      );
      channels.replaceChildren(
        table(
          ['Channel', 'Epoch', 'Since', 'Members', 'In grace'],
          d.channels.map((c) =>
            h(
              'tr',
              { 'data-channel': c.id },
              h('td', { class: 'mono' }, c.id),
              h('td', { class: 'num' }, c.epoch ?? '—'),
              h('td', {}, ago(c.startedAt)),
              h('td', {}, c.memberNames && c.memberNames.length ? c.memberNames.join(', ') : '—'),
              h(
                'td',
                {},
                (c.previous || [])
                  .map((p) => `${p.epoch} (until ${when(p.acceptUntil).slice(11)})`)
                  .join(', ') || '—',
              ),
            ),
          ),
          'No channels yet.',
        ),
      );
      pending.replaceChildren(
        h('h3', { class: 'muted' }, 'Waiting (refused logins)'),
        table(
          ['Node', 'Identity', 'Channels', 'Last try', ''],
          pend.pending.map((p) =>
            h(
              'tr',
              { 'data-pending': p.node },
              h('td', {}, p.node),
              h('td', {}, short(p.identity)),
              h('td', {}, p.channels.join(', ')),
              h('td', {}, ago(p.time), p.attempts > 1 ? ` (${p.attempts}×)` : ''),
              h(
                'td',
                { class: 'actions-cell' },
                h('button', { class: 'small', type: 'button', onclick: () => fill(p) }, 'Admit…'),
              ),
            ),
          ),
          'Nobody is waiting.',
        ),
      );
      grants.replaceChildren(
        h('h3', { class: 'muted' }, 'Admitted by the operator'),
        table(
          ['Node', 'Identity', 'Channels', 'Since', ''],
          gr.grants.map((g) =>
            h(
              'tr',
              { 'data-grant': g.node },
              h('td', {}, g.node),
              h('td', {}, short(g.identity)),
              h('td', {}, g.channels.join(', '), g.address ? ` at ${g.address}` : ''),
              h('td', {}, ago(g.createdAt)),
              h(
                'td',
                { class: 'actions-cell' },
                h(
                  'button',
                  { class: 'small ghost', type: 'button', onclick: act(actions.revoke, g.node) },
                  'Revoke',
                ),
              ),
            ),
          ),
          'No admissions: the policy file decides alone.',
        ),
      );
      varp.replaceChildren(
        table(
          ['Virtual address', 'Node', 'Physical endpoint', 'Registered', 'Expires'],
          vp.entries.map((e) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, e.vip),
              h('td', {}, e.name),
              h('td', { class: 'mono' }, endpoint(e.endpoint)),
              h('td', {}, ago(e.registeredAt)),
              h(
                'td',
                {},
                e.expired
                  ? h('span', { class: 'badge warn' }, 'expired')
                  : when(e.expiresAt).slice(11),
              ),
            ),
          ),
          'No mappings.',
        ),
      );
      storage.replaceChildren(
        table(
          ['Volume', 'Storage role', 'Re-encryption'],
          st.volumes.map((v) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, v.volume),
              h(
                'td',
                {},
                v.members.length
                  ? v.members.map((m) =>
                      h(
                        'span',
                        { class: 'badge' },
                        m,
                        ' ',
                        h(
                          'button',
                          {
                            class: 'small ghost',
                            type: 'button',
                            title: `revoke ${m}`,
                            onclick: act(actions.unrole, v.volume, m),
                          },
                          '×',
                        ),
                      ),
                    )
                  : '—',
              ),
              h(
                'td',
                {},
                v.reencrypt.total
                  ? h('progress', { max: v.reencrypt.total, value: v.reencrypt.done || 0 })
                  : '',
                ' ',
                h(
                  'span',
                  {
                    class: `badge ${v.reencrypt.state === 'needed' || v.reencrypt.state === 'failed' ? 'warn' : v.reencrypt.state === 'done' ? 'good' : ''}`,
                  },
                  v.reencrypt.state,
                ),
                v.reencrypt.total ? ` ${v.reencrypt.done || 0}/${v.reencrypt.total}` : '',
                v.reencrypt.cause ? h('div', { class: 'details' }, v.reencrypt.cause) : '',
              ),
            ),
          ),
          'No storage volumes recorded for this Supernet.',
        ),
      );
    },
  };
}

function auditView() {
  const rows = slot();
  const verdict = h('div', { class: 'result' });
  const filter = { supernet: '', action: '' };
  const sInput = h('input', { id: 'audit-supernet', placeholder: 'any' });
  const aInput = h('input', { id: 'audit-action', placeholder: 'any' });
  sInput.addEventListener('input', () => ((filter.supernet = sInput.value.trim()), refreshNow()));
  aInput.addEventListener('input', () => ((filter.action = aInput.value.trim()), refreshNow()));
  const verify = async () => {
    try {
      const r = await api('GET', v1('/audit/verify'));
      verdict.replaceChildren(
        r.ok
          ? h(
              'div',
              { class: 'banner good' },
              `Chain intact: ${r.entries} entries up to the signed head at ${r.headSeq} (checked by the service; run `,
              h('code', {}, 'supernet audit verify'),
              ' with the pinned key for an independent check).',
            )
          : h(
              'div',
              { class: 'banner bad' },
              h('strong', {}, `Tampered: ${r.findings.length} finding(s)`),
              h(
                'ul',
                {},
                r.findings.map((f) => h('li', {}, f.message)),
              ),
            ),
      );
    } catch (e) {
      toast(e.message, true);
    }
  };
  return {
    nav: 'audit',
    skeleton: () =>
      h(
        'div',
        {},
        h('h1', {}, 'Audit log'),
        h(
          'p',
          { class: 'sub' },
          'Every admission decision and change, hash-chained and signed by the admin service. Newest first.',
        ),
        h(
          'div',
          { class: 'toolbar' },
          h('label', { for: 'audit-supernet' }, 'Supernet', sInput),
          h('label', { for: 'audit-action' }, 'Action', aInput),
          h('button', { type: 'button', class: 'ghost', onclick: verify }, 'Verify chain'),
        ),
        verdict,
        card('Entries', null, rows),
      ),
    async refresh() {
      const first = await api('GET', v1('/audit?since=0&limit=1'));
      const headSeq = first.head ? first.head.seq : 0;
      const page = await api('GET', v1(`/audit?since=${Math.max(0, headSeq - 300)}&limit=300`));
      const entries = page.entries
        .filter((e) => !filter.supernet || (e.supernet || '').includes(filter.supernet))
        .filter((e) => !filter.action || e.action.includes(filter.action))
        .reverse();
      rows.replaceChildren(
        table(
          ['#', 'Time', 'Action', 'Supernet', 'Node', 'Identity', 'Details'],
          entries.map((e) =>
            h(
              'tr',
              { 'data-seq': e.seq, 'data-action': e.action },
              h('td', { class: 'num' }, e.seq),
              h('td', { class: 'nowrap' }, when(e.time)),
              h('td', {}, h('span', { class: `badge ${ACTION_CLASS[e.action] || ''}` }, e.action)),
              h('td', { class: 'mono' }, e.supernet || '—'),
              h('td', {}, e.node || '—'),
              h('td', {}, short(e.identity)),
              h(
                'td',
                { class: 'details' },
                Object.entries(e.detail)
                  .filter(([, v]) => v !== null && v !== undefined)
                  .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
                  .join('  '),
              ),
            ),
          ),
          'No entries.',
        ),
      );
    },
  };
}

function policyView() {
  const status = slot();
  const doc = slot();
  const result = h('div', { class: 'result' });
  const tester = form(
    [
      field('Supernet', { name: 'supernet', placeholder: '0x4711', required: true }),
      field('Identity fingerprint', { name: 'identity', class: 'wide', required: true }),
      field('Node name', { name: 'node', required: true }),
      field('Channels', { name: 'channels', placeholder: '0x01,0x123', required: true }),
    ],
    'Test admission',
    async (v, f) => {
      const r = await api('POST', v1('/policy/test'), {
        supernet: v.supernet,
        identity: v.identity,
        node: v.node,
        channels: list(v.channels),
      });
      result.replaceChildren(
        h(
          'div',
          { class: `banner ${r.admit ? 'good' : 'bad'}`, id: 'policy-test-result' },
          h('strong', {}, r.admit ? 'Would be admitted' : `Would be refused (${r.code})`),
          ': ',
          r.reason,
          r.admit ? ` — address ${r.vip}; joins ${r.joins.join(', ') || 'nothing new'}` : '',
        ),
      );
      // Keep what was asked, to adjust and ask again.
      setTimeout(() => {
        for (const [k, val] of Object.entries(v)) f.elements[k].value = val;
      });
    },
  );
  return {
    nav: 'policy',
    skeleton: () =>
      h(
        'div',
        {},
        h('h1', {}, 'Admission policy'),
        h(
          'p',
          { class: 'sub' },
          'The policy file decides who may join which Supernet and channels (docs/policy.md); operator admissions apply where no rule matches.',
        ),
        status,
        card(
          'Would this login be admitted?',
          null,
          h(
            'p',
            { class: 'muted' },
            'The same checks as a real login, against the running policy. Nothing changes.',
          ),
          tester,
          result,
        ),
        card('Running policy', null, doc),
      ),
    async refresh() {
      const [st, p] = await Promise.all([
        api('GET', v1('/policy/status')),
        api('GET', v1('/policy')),
      ]);
      status.replaceChildren(
        st.refused
          ? h(
              'div',
              { class: 'banner bad', id: 'policy-refused' },
              `The file was changed but refused ${ago(st.refused.at)}; the running policy stays in force: `,
              h('span', { class: 'mono' }, st.refused.error),
            )
          : '',
        card(
          'In force',
          null,
          h(
            'dl',
            { class: 'kv' },
            h('dt', {}, 'File'),
            h('dd', { class: 'mono' }, st.source || '(built in)'),
            h('dt', {}, 'SHA-256'),
            h('dd', { class: 'mono' }, st.hash),
            h('dt', {}, 'Loaded'),
            h('dd', {}, when(st.loadedAt)),
            h('dt', {}, 'Rules'),
            h(
              'dd',
              {},
              `${st.rules} in ${st.supernets.length} Supernet${st.supernets.length === 1 ? '' : 's'}`,
            ),
          ),
        ),
      );
      doc.replaceChildren(h('pre', {}, JSON.stringify(p.policy, null, 2)));
    },
  };
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
