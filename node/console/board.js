// Sent alerts and their delivery board: per recipient, the hop-by-hop timeline built by the
// node from verified receipts only (accepted, relayed, delayed with retry-until, delivered,
// acknowledged, expired), per tier the acks and the escalation countdown, receipts that did
// not verify listed apart, and the evidence bundle for oversight. Live on SSE events.

import { explain } from './api.js';
import { dispositionBadge, kindBadge, priorityBadge, sectionNames, shortId, stateBadge, statusBadge, tlpBadge, verifiedBadge } from './badges.js';
import { localTime, timeEl } from './clock.js';
import { federation, sent, sentItems } from './data.js';
import { fill, h, keepFocus } from './dom.js';
import { icon } from './icons.js';
import { lastSent } from './compose.js';
import { can } from './session.js';

const DELIVERED = new Set(['delivered', 'acknowledged']);
const FAILED = new Set(['rejected', 'expired']);

let selected = null;
let root = null;
let shown = ''; // what the detail pane shows, so an unchanged refresh does not re-render it
let unsubscribe = [];
const evidenceNotes = new Map(); // message id -> {ok, text}

export function counts(alert) {
  const states = alert.recipients.map((r) => r.state);
  const delivered = states.filter((s) => DELIVERED.has(s)).length;
  const acknowledged = states.filter((s) => s === 'acknowledged').length;
  const failed = states.filter((s) => FAILED.has(s)).length;
  const held = states.filter((s) => s === 'held').length;
  return { delivered, acknowledged, failed, held, live: states.length - held, pending: states.length - delivered - failed - held };
}

function deliveryLine(alert) {
  const c = counts(alert);
  const parts = [`${c.delivered} of ${c.live} delivered`];
  if (c.acknowledged) parts.push(`${c.acknowledged} acknowledged`);
  if (c.pending) parts.push(`${c.pending} pending`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.held) parts.push(`${c.held} held for escalation`);
  return parts.join(' · ');
}

function row(alert) {
  const c = counts(alert);
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        class: ['alert-row', `row-${alert.priority.toLowerCase()}`, alert.message_id === selected && 'selected', c.failed && 'failed'],
        'aria-current': alert.message_id === selected ? 'true' : null,
        dataset: { focusKey: `sent-${alert.message_id}`, id: alert.message_id },
        on: { click: () => select(alert.message_id) },
      },
      h(
        'span',
        { class: 'row-top' },
        priorityBadge(alert.priority),
        tlpBadge(alert.tlp),
        kindBadge(alert.kind),
        statusBadge(alert.status),
      ),
      h('span', { class: 'row-headline', text: alert.headline ?? '(content purged; timeline kept)' }),
      h('span', { class: 'row-meta' }, h('span', { class: c.failed ? 'danger' : null, text: deliveryLine(alert) }), h('span', {}, 'sent ', timeEl(alert.created, { withClock: false }))),
    ),
  );
}

function renderList() {
  const list = root?.querySelector('#sent-list');
  if (!list) return;
  const alerts = sent.value ?? [];
  fill(root.querySelector('#sent-summary'), sent.error ? `Could not load sent alerts: ${sent.error.message}` : `${alerts.length} sent by this agency, newest first`);
  keepFocus(list, () =>
    fill(list, alerts.length ? alerts.map(row) : h('li', { class: 'empty', text: can.send() ? 'Nothing sent yet. Alerts you send appear here with their delivery.' : 'This agency has sent nothing yet.' })),
  );
  if (!selected && alerts.length) select(alerts[0].message_id);
}

function escalationText(tier) {
  const e = tier.escalation;
  if (!e) return null;
  switch (e.state) {
    case 'pending':
      return h('span', { class: 'escalation pending' }, icon('hourglass'), `releases tier ${e.target} `, timeEl(e.due_at, { future: 'in {}', past: 'now (due {} ago)', withClock: false, soonMs: 5 * 60_000 }), ' unless accepted');
    case 'fired':
      return h('span', { class: 'escalation fired' }, icon('alert'), `escalated: tier ${e.target} released${e.decided_at ? ` at ${localTime(e.decided_at)}` : ''}`);
    case 'acked':
      return h('span', { class: 'escalation stopped' }, icon('check'), `not needed: accepted in time (tier ${e.target} never sent)`);
    case 'cancelled':
      return h('span', { class: 'escalation stopped' }, icon('x'), `stopped: the alert was cancelled`);
    default:
      return h('span', { class: 'escalation stopped', text: `${e.state} (tier ${e.target})` });
  }
}

function tiersTable(alert) {
  return h(
    'table',
    { class: 'data tiers-table' },
    h('caption', { text: 'Tiers' }),
    h('thead', {}, h('tr', {}, ['Tier', 'Recipients', 'Sections', 'Ack deadline', 'Acks', 'Escalation'].map((t) => h('th', { scope: 'col', text: t })))),
    h(
      'tbody',
      {},
      alert.tiers.map((t) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, t.name, t.held ? h('span', { class: 'badge state state-held' }, icon('pause'), 'held') : null),
          h('td', { text: t.recipients.join(', ') }),
          h('td', { text: sectionNames(t.sections).join(', ') }),
          h('td', {}, t.ack_deadline ? timeEl(t.ack_deadline, { future: 'in {}', past: 'passed {} ago', soonMs: 5 * 60_000 }) : '–'),
          h('td', { text: Object.entries(t.acks).filter(([, n]) => n).map(([d, n]) => `${n} ${d}`).join(', ') || '–' }),
          h('td', {}, escalationText(t) ?? '–'),
        ),
      ),
    ),
  );
}

function timelineEntry(e) {
  const detail = [];
  if (e.peer) detail.push(h('span', { class: 'peer', text: `${e.event === 'accepted' ? 'from' : 'to'} ${e.peer}` }));
  if (e.retry_until) detail.push(h('span', { class: 'retry' }, 'retrying until ', timeEl(e.retry_until)));
  if (e.reason) detail.push(h('span', { class: 'reason', text: e.reason }));
  if (e.log_index !== null && e.log_index !== undefined) detail.push(h('span', { class: 'log-index', text: `log #${e.log_index}` }));
  return h(
    'li',
    { class: `tl tl-${e.event}` },
    h('span', { class: 'tl-time' }, timeEl(e.time)),
    h('span', { class: 'tl-hop', text: e.hop }),
    stateBadge(e.event),
    detail,
    verifiedBadge(e.verified),
  );
}

const EVENT_ORDER = ['accepted', 'relayed', 'delayed', 'delivered', 'rejected', 'expired', 'acknowledged'];

/** Receipts in the order the message travelled: by time, then along the path, then by event. */
export function travelOrder(timeline, path) {
  const at = (hop) => {
    const i = path.indexOf(hop);
    return i < 0 ? path.length : i;
  };
  return [...timeline].sort((a, b) => a.time - b.time || (a.event === 'acknowledged') - (b.event === 'acknowledged') || at(a.hop) - at(b.hop) || EVENT_ORDER.indexOf(a.event) - EVENT_ORDER.indexOf(b.event));
}

function pathTo(member) {
  const fed = federation.value;
  if (!fed) return [];
  const home = (id) => fed.members.find((m) => m.id === id)?.home_gateway;
  return [fed.me, home(fed.me), home(member), member].filter(Boolean);
}

function recipientCard(r) {
  const events = travelOrder(r.timeline ?? [], pathTo(r.member));
  const ack = r.ack;
  return h(
    'li',
    { class: `recipient state-card-${r.state}`, dataset: { member: r.member } },
    h(
      'div',
      { class: 'recipient-head' },
      h('h4', { text: r.member }),
      stateBadge(r.state),
      h('span', { class: 'badge tier', text: `tier ${r.tier}` }),
    ),
    ack
      ? h(
          'p',
          { class: 'ack-line' },
          dispositionBadge(ack.disposition),
          ` at ${localTime(ack.at)}`,
          ack.reason ? h('span', { class: 'reason', text: ` · reason: ${ack.reason}` }) : null,
          ack.comment ? h('span', { class: 'comment', text: ` · “${ack.comment}”` }) : null,
          ' ',
          ack.receipt_verified ? verifiedBadge(true) : h('span', { class: 'badge unverified' }, icon('shieldx'), 'UNVERIFIED: no verified ack receipt'),
        )
      : null,
    events.length
      ? h('ol', { class: 'timeline', 'aria-label': `Hop timeline for ${r.member}` }, events.map(timelineEntry))
      : h('p', { class: 'hint', text: r.state === 'held' ? 'Held back: sent only if the escalation fires.' : 'No receipts yet.' }),
  );
}

async function downloadEvidence(alert) {
  evidenceNotes.set(alert.message_id, { ok: true, text: 'Preparing the evidence bundle…' });
  renderDetail();
  let note;
  try {
    const resp = await fetch(`/v1/alerts/${alert.message_id}/evidence`, { credentials: 'same-origin', cache: 'no-store' });
    if (resp.ok) {
      const blob = await resp.blob();
      const named = /filename="?([A-Za-z0-9._-]+)"?/.exec(resp.headers.get('Content-Disposition') ?? '');
      const name = named ? named[1] : `evidence-${alert.message_id}.json`;
      const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
      const link = h('a', { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      note = { ok: true, text: `Evidence bundle downloaded: ${name} (${blob.size.toLocaleString()} bytes). Verify it offline with the oversight tools.` };
    } else if (resp.status === 404) {
      note = { ok: false, text: 'Evidence bundle not available: this node does not offer evidence bundles for this alert (HTTP 404). Ask the node operator to enable the evidence export.' };
    } else {
      const body = await resp.json().catch(() => null);
      note = { ok: false, text: `Evidence bundle not available: ${body?.error?.message ?? `HTTP ${resp.status}`}` };
    }
  } catch (err) {
    note = { ok: false, text: `Evidence bundle not available: ${explain(err)}` };
  }
  evidenceNotes.set(alert.message_id, note);
  renderDetail();
}

function links(alert) {
  const out = [];
  for (const r of alert.referenced_by ?? []) {
    out.push(
      h(
        'div',
        { class: ['banner', r.kind === 'cancel' ? 'banner-cancel' : 'banner-update'], role: 'note' },
        icon(r.kind === 'cancel' ? 'x' : 'link'),
        h('span', { text: `${r.kind === 'cancel' ? 'Cancelled' : 'Updated'} by message ${shortId(r.message_id)} at ${localTime(r.created)}` }),
        h('button', { type: 'button', class: 'btn btn-small', on: { click: () => select(r.message_id, { focus: true }) } }, 'Open it'),
      ),
    );
  }
  for (const ref of alert.refs ?? []) {
    out.push(
      h(
        'div',
        { class: 'banner', role: 'note' },
        icon('link'),
        h('span', { text: `${alert.kind === 'cancel' ? 'Cancels' : alert.kind === 'update' ? 'Updates' : 'Refers to'} message ${shortId(ref)}` }),
        h('button', { type: 'button', class: 'btn btn-small', on: { click: () => select(ref, { focus: true }) } }, 'Open it'),
      ),
    );
  }
  return out;
}

function renderDetail() {
  const pane = root?.querySelector('#sent-detail');
  if (!pane) return;
  const brief = (sent.value ?? []).find((a) => a.message_id === selected);
  const store = selected ? sentItems.get(selected) : null;
  const alert = store?.value?.message_id === selected ? store.value : null;
  if (!alert) {
    fill(pane, h('p', { class: 'placeholder', text: store?.error ? `Could not load the delivery status: ${store.error.message}` : brief || selected ? 'Loading the delivery status…' : 'Select a sent alert to see its delivery.' }));
    return;
  }
  const note = evidenceNotes.get(alert.message_id);
  const signature = JSON.stringify([alert, note, lastSent, Boolean(federation.value)]);
  if (signature === shown && pane.firstChild) return;
  shown = signature;
  const c = counts(alert);
  const confirmation = lastSent?.message_id === alert.message_id ? h('p', { class: 'banner banner-ok', role: 'status' }, icon('check'), `Sent. Receipts appear here as each hop reports; nothing to reload.`) : null;
  keepFocus(pane, () =>
    fill(
      pane,
      h(
        'article',
        { class: 'detail board', 'aria-labelledby': 'board-title' },
        confirmation,
        h(
          'header',
          { class: 'detail-head' },
          h(
            'p',
            { class: 'badges' },
            priorityBadge(alert.priority),
            tlpBadge(alert.tlp),
            kindBadge(alert.kind),
            statusBadge(alert.status),
          ),
          h('h2', { id: 'board-title', tabindex: '-1', text: alert.headline ?? '(content purged; the timeline is kept)' }),
          h('p', { class: 'event', text: `sent by ${alert.officer}` }),
        ),
        h(
          'div',
          { class: 'board-actions' },
          h('button', { type: 'button', class: 'btn', id: 'evidence', dataset: { focusKey: 'evidence' }, on: { click: () => downloadEvidence(alert) } }, icon('download'), 'Download evidence bundle'),
          can.modify(alert) && alert.status !== 'cancelled' && alert.kind !== 'cancel'
            ? [
                h('a', { class: 'btn', href: `#/compose?kind=update&ref=${alert.message_id}` }, icon('link'), 'Send update…'),
                h('a', { class: 'btn btn-reject', href: `#/compose?kind=cancel&ref=${alert.message_id}` }, icon('x'), 'Cancel alert…'),
              ]
            : null,
        ),
        note ? h('p', { class: ['evidence-status', note.ok ? 'ok' : 'error'], id: 'evidence-status', role: 'status', text: note.text }) : null,
        links(alert),
        h(
          'dl',
          { class: 'meta' },
          h('div', {}, h('dt', { text: 'Message' }), h('dd', {}, h('code', { text: alert.message_id }))),
          h('div', {}, h('dt', { text: 'Sent' }), h('dd', {}, timeEl(alert.created))),
          h('div', {}, h('dt', { text: 'Expires' }), h('dd', {}, alert.purged ? 'expired; content purged' : timeEl(alert.expires, { future: 'in {}', past: 'expired {} ago' }))),
        ),
        h(
          'div',
          { class: 'progress-line' },
          h('label', { for: 'delivery-progress', text: deliveryLine(alert) }),
          h('progress', { id: 'delivery-progress', max: String(Math.max(c.live, 1)), value: String(c.delivered) }),
        ),
        tiersTable(alert),
        h('h3', { text: 'Recipients and hops' }),
        h('ul', { class: 'recipients', id: 'recipients' }, alert.recipients.map(recipientCard)),
        alert.unverified_receipts.length
          ? h(
              'section',
              { class: 'unverified', 'aria-labelledby': 'unverified-title' },
              h('h3', { id: 'unverified-title' }, icon('shieldx'), `${alert.unverified_receipts.length} receipt(s) did not verify and are not counted`),
              h('ul', {}, alert.unverified_receipts.map((u) => h('li', {}, h('code', { text: `${u.digest.slice(0, 16)}…` }), ` ${u.error}`))),
            )
          : h('p', { class: 'hint verified-line' }, icon('shield'), 'Every receipt shown verified against the roster.'),
      ),
    ),
  );
}

export function select(id, { focus = false } = {}) {
  selected = id;
  if (!root) return;
  for (const el of root.querySelectorAll('.alert-row')) {
    const on = el.dataset.id === id;
    el.classList.toggle('selected', on);
    if (on) el.setAttribute('aria-current', 'true');
    else el.removeAttribute('aria-current');
  }
  renderDetail();
  sentItems.get(id).refresh();
  if (focus) root.querySelector(`.alert-row[data-id="${id}"]`)?.focus();
}

/** Re-read the open alert (SSE receipt, ack and escalation events). */
export function refreshOpen() {
  if (selected) sentItems.get(selected).refresh();
}

export const boardView = {
  id: 'sent',
  title: 'Sent',
  mount(main, params) {
    root = h(
      'div',
      { class: 'split' },
      h(
        'section',
        { class: 'list-pane', 'aria-labelledby': 'sent-title' },
        h('h1', { id: 'sent-title', tabindex: '-1', text: 'Sent alerts' }),
        h('p', { class: 'list-summary', id: 'sent-summary' }),
        h('ol', { class: 'alert-list', id: 'sent-list', 'aria-label': 'Sent alerts, newest first' }),
      ),
      h('div', { class: 'detail-pane', id: 'sent-detail', 'aria-live': 'off' }),
    );
    fill(main, root);
    shown = '';
    if (params.id) selected = params.id;
    unsubscribe = [
      sent.subscribe(() => renderList()),
      sentItems.subscribe((id) => {
        if (id === selected) renderDetail();
      }),
    ];
    renderList();
    renderDetail();
    sent.refresh();
    if (selected) sentItems.get(selected).refresh();
  },
  unmount() {
    for (const off of unsubscribe) off();
    unsubscribe = [];
    root = null;
  },
  onKey(key) {
    if (key !== 'j' && key !== 'k') return false;
    const ids = (sent.value ?? []).map((a) => a.message_id);
    if (!ids.length) return true;
    const at = ids.indexOf(selected);
    select(ids[at < 0 ? 0 : Math.max(0, Math.min(ids.length - 1, at + (key === 'j' ? 1 : -1)))], { focus: true });
    return true;
  },
};
