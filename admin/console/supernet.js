/*
 * Supernet console: one Supernet's page — nodes live, channels and key
 * epochs, admissions (waiting and granted), VARP table, storage volumes,
 * dissolve.
 */
/* global window */
import {
  h,
  toast,
  api,
  sn,
  ago,
  when,
  bytes,
  rate,
  endpoint,
  short,
  list,
  table,
  card,
  field,
  form,
  confirmDialog,
  slot,
  hooks,
} from './ui.js';

export function supernetView(sid) {
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
        hooks.refresh();
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
                v.reencrypt.by && v.reencrypt.state !== 'done'
                  ? h('div', { class: 'details' }, `run by ${v.reencrypt.by}`)
                  : '',
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
