// Shared visual vocabulary: precedence, TLP, delivery state and kind badges.
// Each badge is icon + text (+ colour), so it reads the same in greyscale or to a screen reader.

import { h } from './dom.js';
import { icon } from './icons.js';

export const PRECEDENCE = ['FLASH', 'IMMEDIATE', 'PRIORITY', 'ROUTINE'];
const PRIORITY_ICONS = { FLASH: 'bolt', IMMEDIATE: 'alert', PRIORITY: 'up', ROUTINE: 'dot' };
export const URGENT = new Set(['FLASH', 'IMMEDIATE']);

export function priorityBadge(priority) {
  return h('span', { class: `badge prio prio-${priority.toLowerCase()}` }, icon(PRIORITY_ICONS[priority] ?? 'dot'), priority);
}

/** TLP 2.0 colours: coloured text on black, as the standard asks. */
export function tlpBadge(label) {
  const cls = label.replace('TLP:', '').replace('+', '-').toLowerCase();
  return h('span', { class: `badge tlp tlp-${cls}`, title: TLP_MEANING[label] ?? '' }, label);
}

const TLP_MEANING = {
  'TLP:RED': 'For the eyes and ears of individual recipients only, no further disclosure.',
  'TLP:AMBER+STRICT': 'Limited disclosure, recipients can only spread this on a need-to-know basis within their organisation only.',
  'TLP:AMBER': 'Limited disclosure, recipients can only spread this on a need-to-know basis within their organisation and its clients.',
  'TLP:GREEN': 'Limited disclosure, recipients can spread this within their community.',
  'TLP:CLEAR': 'Recipients can spread this to the world, there is no limit on disclosure.',
};

const STATES = {
  held: { icon: 'pause', text: 'held', help: 'held back until its escalation fires' },
  queued: { icon: 'clock', text: 'queued', help: 'stored here, not yet accepted by the next hop' },
  accepted: { icon: 'clock', text: 'accepted', help: 'accepted by the first gateway' },
  relayed: { icon: 'arrow', text: 'relayed', help: 'on its way through the gateways' },
  delayed: { icon: 'hourglass', text: 'delayed', help: 'a hop cannot reach the next one yet and keeps retrying' },
  delivered: { icon: 'check', text: 'delivered', help: "the recipient's node accepted it" },
  acknowledged: { icon: 'checks', text: 'acknowledged', help: 'an officer of the recipient acknowledged it' },
  rejected: { icon: 'x', text: 'rejected', help: 'a hop refused it' },
  expired: { icon: 'x', text: 'expired', help: 'it expired before delivery' },
};

export function stateBadge(state) {
  const s = STATES[state] ?? { icon: 'dot', text: state, help: '' };
  return h('span', { class: `badge state state-${state}`, title: s.help }, icon(s.icon), s.text);
}

export function kindBadge(kind) {
  if (kind === 'alert') return null;
  return h('span', { class: `badge kind kind-${kind}` }, kind === 'cancel' ? icon('x') : icon('link'), kind.toUpperCase());
}

/** A sent alert's status when it is no longer simply active. */
export function statusBadge(status) {
  if (status === 'active') return null;
  return h('span', { class: `badge status status-${status}` }, icon(status === 'cancelled' ? 'x' : 'link'), status);
}

const DISPOSITION = {
  accepted: { icon: 'check', text: 'accepted' },
  received: { icon: 'eye', text: 'received' },
  rejected: { icon: 'x', text: 'rejected' },
};

export function dispositionBadge(disposition) {
  const d = DISPOSITION[disposition] ?? { icon: 'dot', text: disposition };
  return h('span', { class: `badge ack ack-${disposition}` }, icon(d.icon), d.text);
}

export function verifiedBadge(verified) {
  return verified
    ? h('span', { class: 'badge verified', title: 'signature checked against the roster' }, icon('shield'), 'verified')
    : h('span', { class: 'badge unverified', title: 'did not verify against the roster; not counted' }, icon('shieldx'), 'UNVERIFIED');
}

export function shortId(id) {
  return `${id.slice(0, 8)}…`;
}

/** Sections as officers name them: the API's "info" is the headline (and CAP fields). */
function sectionName(id) {
  return id === 'info' ? 'headline' : id;
}

const SECTION_ORDER = ['headline', 'summary', 'details', 'instructions', 'attachments'];

/** Section ids (API form) as officer names, in reading order. */
export function sectionNames(ids) {
  const rank = (name) => (SECTION_ORDER.includes(name) ? SECTION_ORDER.indexOf(name) : SECTION_ORDER.length);
  return [...new Set(ids.map(sectionName))].sort((a, b) => rank(a) - rank(b));
}
