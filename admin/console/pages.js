/*
 * Supernet console: the overview of Supernets, the audit log, the policy page.
 */
/* global setTimeout */
import {
  h,
  toast,
  api,
  v1,
  sn,
  ago,
  when,
  short,
  list,
  table,
  card,
  field,
  form,
  ACTION_CLASS,
  slot,
  hooks,
} from './ui.js';

export function overviewView() {
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

export function auditView() {
  const rows = slot();
  const verdict = h('div', { class: 'result' });
  const filter = { supernet: '', action: '' };
  const sInput = h('input', { id: 'audit-supernet', placeholder: 'any' });
  const aInput = h('input', { id: 'audit-action', placeholder: 'any' });
  sInput.addEventListener(
    'input',
    () => ((filter.supernet = sInput.value.trim()), hooks.refresh()),
  );
  aInput.addEventListener('input', () => ((filter.action = aInput.value.trim()), hooks.refresh()));
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

export function policyView() {
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
