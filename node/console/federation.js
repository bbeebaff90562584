// Federation status: every roster member, its home gateway, and reachability as this node sees
// it. A node talks only to its home gateway, so for everyone else the honest answer is "through
// gw-x", with that gateway's state.

import { federation } from './data.js';
import { fill, h } from './dom.js';
import { icon } from './icons.js';
import { timeEl } from './clock.js';

let root = null;
let unsubscribe = null;

const REACH = {
  self: { icon: 'dot', text: 'this node' },
  ok: { icon: 'check', text: 'reachable' },
  sending: { icon: 'arrow', text: 'sending (backlog)' },
  'backing-off': { icon: 'hourglass', text: 'unreachable, retrying' },
  unknown: { icon: 'dot', text: 'no direct link' },
};

function reachBadge(state) {
  const r = REACH[state] ?? { icon: 'dot', text: state };
  return h('span', { class: `badge reach reach-${state}` }, icon(r.icon), r.text);
}

/** The hops a message from this node takes to member: us, our home gateway, theirs, them. */
export function route(member, byId, me) {
  const hops = [me, byId.get(me)?.home_gateway, member.kind === 'gateway' ? null : member.home_gateway, member.id];
  return hops.filter((hop, i) => hop && hops.indexOf(hop) === i);
}

function reachability(member, byId, me) {
  if (member.reachability !== 'unknown') return reachBadge(member.reachability);
  const next = byId.get(byId.get(me)?.home_gateway);
  if (!next || next.id === member.id) return reachBadge('unknown');
  return h('span', { class: 'via' }, `not a direct peer; next hop ${next.id}: `, reachBadge(next.reachability));
}

function render() {
  const body = root?.querySelector('#federation-body');
  if (!body) return;
  const fed = federation.value;
  if (!fed) {
    fill(body, h('p', { class: 'placeholder', text: federation.error ? `Could not load the federation: ${federation.error.message}` : 'Loading…' }));
    return;
  }
  const byId = new Map(fed.members.map((m) => [m.id, m]));
  const me = byId.get(fed.me);
  fill(
    body,
    h('p', { class: 'list-summary' }, `Roster version ${fed.roster_version} · ${fed.members.length} members · this node is ${fed.me}`, me?.home_gateway ? ` (home gateway ${me.home_gateway})` : ''),
    h(
      'table',
      { class: 'data federation-table' },
      h('caption', { class: 'visually-hidden', text: 'Federation members' }),
      h('thead', {}, h('tr', {}, ['Member', 'Kind', 'Home gateway', 'Route from here', 'Reachability as this node sees it', 'Last success', 'Last error'].map((t) => h('th', { scope: 'col', text: t })))),
      h(
        'tbody',
        {},
        fed.members.map((m) =>
          h(
            'tr',
            { class: m.is_me ? 'me' : null },
            h('th', { scope: 'row' }, h('span', { class: 'member-id', text: m.id }), m.display_name ? h('span', { class: 'member-name', text: m.display_name }) : null),
            h('td', {}, m.kind === 'gateway' ? icon('globe') : icon('inbox'), m.kind === 'gateway' ? ' gateway' : ' agency node'),
            h('td', { text: m.home_gateway ?? '–' }),
            h('td', { class: 'route', text: m.is_me ? '–' : route(m, byId, fed.me).join(' → ') }),
            h('td', {}, reachability(m, byId, fed.me)),
            h('td', {}, m.last_success_at ? timeEl(m.last_success_at) : '–'),
            h('td', { class: m.last_error ? 'danger' : null, text: m.last_error ?? '–' }),
          ),
        ),
      ),
    ),
  );
}

export const federationView = {
  id: 'federation',
  title: 'Federation',
  mount(main) {
    root = h(
      'section',
      { class: 'page', 'aria-labelledby': 'federation-title' },
      h('div', { class: 'page-head' }, h('h1', { id: 'federation-title', tabindex: '-1', text: 'Federation status' }), h('button', { type: 'button', class: 'btn', on: { click: () => federation.refresh() } }, 'Refresh')),
      h('div', { id: 'federation-body' }),
    );
    fill(main, root);
    unsubscribe = federation.subscribe(render);
    render();
    federation.refresh();
  },
  unmount() {
    unsubscribe?.();
    root = null;
  },
  onKey() {
    return false;
  },
};
