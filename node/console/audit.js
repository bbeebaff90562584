// Audit trail (supervisors and auditors): officer actions as logged in the node's Merkle log.
// Who, what, when, and the log index an oversight body can prove; never content.

import { audit } from './data.js';
import { fill, h } from './dom.js';
import { timeEl } from './clock.js';

let root = null;
let unsubscribe = null;

function render() {
  const body = root?.querySelector('#audit-body');
  if (!body) return;
  const actions = audit.value;
  if (!actions) {
    fill(body, h('p', { class: 'placeholder', text: audit.error ? `Could not load the audit trail: ${audit.error.message}` : 'Loading…' }));
    return;
  }
  fill(
    body,
    h(
      'table',
      { class: 'data' },
      h('caption', { class: 'visually-hidden', text: 'Officer actions, newest first' }),
      h('thead', {}, h('tr', {}, ['Log index', 'When', 'Officer', 'Role', 'Action', 'Target'].map((t) => h('th', { scope: 'col', text: t })))),
      h(
        'tbody',
        {},
        actions.length
          ? actions.map((a) => h('tr', {}, h('td', { text: `#${a.log_index}` }), h('td', {}, timeEl(a.at)), h('td', { text: a.officer }), h('td', { text: a.role }), h('td', { text: a.action }), h('td', {}, h('code', { text: a.target ?? '–' }))))
          : h('tr', {}, h('td', { colspan: 6, text: 'No officer actions yet.' })),
      ),
    ),
  );
}

export const auditView = {
  id: 'audit',
  title: 'Audit',
  mount(main) {
    root = h('section', { class: 'page', 'aria-labelledby': 'audit-title' }, h('h1', { id: 'audit-title', tabindex: '-1', text: 'Audit trail' }), h('div', { id: 'audit-body' }));
    fill(main, root);
    unsubscribe = audit.subscribe(render);
    render();
    audit.refresh();
  },
  unmount() {
    unsubscribe?.();
    root = null;
  },
  onKey() {
    return false;
  },
};
