// Inbox view: alerts addressed to this agency, live. Threads (an update or cancel under the
// alert it refers to) sorted by precedence, then newest activity; the open alert on the right
// with what our tier may read, what was withheld from us, and the acknowledge panel.

import { ackKey, ackPanel, panelState } from './ack.js';
import { dispositionBadge, kindBadge, PRECEDENCE, priorityBadge, sectionNames, shortId, tlpBadge } from './badges.js';
import { timeEl } from './clock.js';
import { awaitingAck, finalAck, inbox, inboxItems } from './data.js';
import { fill, h, keepFocus } from './dom.js';
import { icon } from './icons.js';
import { can } from './session.js';

const TEXT_SECTIONS = ['summary', 'details', 'instructions'];
const SOON_MS = 30 * 60_000;

let selected = null;
let root = null;
let shown = ''; // what the detail pane shows, so an unchanged refresh does not re-render it
let unsubscribe = [];

/** Threads: roots in precedence order (the thread's highest), then newest activity first. */
export function threads(items) {
  const byId = new Map(items.map((i) => [i.message_id, i]));
  const replies = new Map();
  const roots = [];
  for (const item of items) {
    const parent = item.kind !== 'alert' ? item.refs.find((r) => byId.has(r) && r !== item.message_id) : undefined;
    if (parent) {
      if (!replies.has(parent)) replies.set(parent, []);
      replies.get(parent).push(item);
    } else roots.push(item);
  }
  const out = roots.map((item) => {
    const thread = (replies.get(item.message_id) ?? []).sort((a, b) => a.created - b.created);
    const all = [item, ...thread];
    return {
      item,
      replies: thread,
      rank: Math.min(...all.map((i) => PRECEDENCE.indexOf(i.priority))),
      latest: Math.max(...all.map((i) => i.received_at)),
    };
  });
  return out.sort((a, b) => a.rank - b.rank || b.latest - a.latest);
}

function order(items) {
  return threads(items).flatMap((t) => [t.item, ...t.replies]);
}

function ackState(item) {
  const final = finalAck(item);
  if (final) return dispositionBadge(final.disposition);
  if (awaitingAck(item)) return h('span', { class: 'badge awaiting' }, icon('bell'), 'awaiting ack');
  return null;
}

function threadMarks(item) {
  const kinds = new Set((item.superseded_by ?? []).map((s) => s.kind));
  if (kinds.has('cancel')) return h('span', { class: 'badge superseded cancelled' }, icon('x'), 'cancelled by sender');
  if (kinds.has('update')) return h('span', { class: 'badge superseded' }, icon('link'), 'updated');
  return null;
}

function row(item, reply) {
  const prio = item.priority.toLowerCase();
  return h(
    'li',
    { class: reply ? 'reply' : null },
    h(
      'button',
      {
        type: 'button',
        class: ['alert-row', `row-${prio}`, item.message_id === selected && 'selected', awaitingAck(item) && 'awaiting'],
        'aria-current': item.message_id === selected ? 'true' : null,
        dataset: { focusKey: `row-${item.message_id}`, id: item.message_id },
        on: { click: () => select(item.message_id) },
      },
      h('span', { class: 'row-top' }, priorityBadge(item.priority), tlpBadge(item.tlp), kindBadge(item.kind), h('span', { class: 'origin', text: `from ${item.origin}` })),
      h('span', { class: 'row-headline', text: item.headline ?? '(content purged after expiry)' }),
      h(
        'span',
        { class: 'row-meta' },
        ackState(item),
        threadMarks(item),
        h('span', { class: 'row-time' }, 'received ', timeEl(item.received_at, { withClock: false })),
        item.purged ? h('span', { text: 'purged' }) : timeEl(item.expires, { future: 'expires in {}', past: 'expired {} ago', withClock: false, soonMs: SOON_MS }),
      ),
    ),
  );
}

function renderList() {
  const list = root?.querySelector('#inbox-list');
  if (!list) return;
  const items = inbox.value ?? [];
  const waiting = items.filter(awaitingAck).length;
  fill(
    root.querySelector('#inbox-summary'),
    inbox.error ? `Could not load the inbox: ${inbox.error.message}` : `${items.length} alert${items.length === 1 ? '' : 's'} · ${waiting} awaiting acknowledgement`,
  );
  keepFocus(list, () => {
    if (!items.length) {
      fill(list, h('li', { class: 'empty' }, 'No alerts for your agency yet. New alerts appear here as they arrive; there is no need to reload.'));
      return;
    }
    fill(
      list,
      threads(items).map((t) => [row(t.item, false), t.replies.length ? h('li', { class: 'thread' }, h('ol', { class: 'replies', 'aria-label': 'Updates and cancels' }, t.replies.map((r) => row(r, true)))) : null]),
    );
  });
  if (!selected && items.length) select(order(items)[0].message_id, { focus: false });
}

function section(title, body, extra = {}) {
  return h('section', { class: 'content-section', 'aria-label': title, ...extra }, h('h3', { text: title }), body);
}

function attachmentList(files) {
  return h(
    'ul',
    { class: 'attachments' },
    files.map((f) =>
      h(
        'li',
        {},
        icon('file'),
        h('span', { text: `${f.name} (${f.type}, ${f.size.toLocaleString()} bytes)` }),
        h('button', { type: 'button', class: 'btn btn-small', on: { click: () => saveAttachment(f) } }, icon('download'), 'Save'),
      ),
    ),
  );
}

function saveAttachment(file) {
  const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
  // octet-stream, so the browser downloads the file and never renders it in this origin.
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const link = h('a', { href: url, download: file.name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function threadBanner(item) {
  const all = inbox.value ?? [];
  const byId = new Map(all.map((i) => [i.message_id, i]));
  const banners = [];
  for (const s of item.superseded_by ?? []) {
    const later = byId.get(s.message_id);
    const cancel = s.kind === 'cancel';
    banners.push(
      h(
        'div',
        { class: ['banner', cancel ? 'banner-cancel' : 'banner-update'], role: 'note' },
        icon(cancel ? 'x' : 'link'),
        h('span', { text: cancel ? 'The sender cancelled this alert.' : 'The sender updated this alert.' }),
        later ? h('button', { type: 'button', class: 'btn btn-small', on: { click: () => select(s.message_id, { focus: true }) } }, cancel ? 'Open the cancellation' : 'Open the update') : null,
      ),
    );
  }
  if (item.kind !== 'alert' || item.refs.length) {
    for (const ref of item.refs) {
      const original = byId.get(ref);
      const verb = item.kind === 'cancel' ? 'Cancels' : item.kind === 'update' ? 'Updates' : 'Follows up on';
      banners.push(
        h(
          'div',
          { class: 'banner', role: 'note' },
          icon('link'),
          h('span', { text: `${verb} ${original ? `“${original.headline ?? shortId(ref)}”` : `message ${shortId(ref)}`}` }),
          original ? h('button', { type: 'button', class: 'btn btn-small', on: { click: () => select(ref, { focus: true }) } }, 'Open it') : null,
        ),
      );
    }
  }
  return banners;
}

function renderDetail() {
  const pane = root?.querySelector('#inbox-detail');
  if (!pane) return;
  const listItem = (inbox.value ?? []).find((i) => i.message_id === selected);
  if (!listItem) {
    fill(pane, h('p', { class: 'placeholder', text: selected ? 'This alert is no longer in the inbox.' : 'Select an alert to read it.' }));
    return;
  }
  const store = inboxItems.get(selected);
  const full = store.value?.message_id === selected ? store.value : null;
  const item = full ?? listItem;
  const content = full?.content ?? {};
  const visible = TEXT_SECTIONS.filter((s) => typeof content[s] === 'string');
  const withheld = item.sections_withheld ?? [];
  const signature = JSON.stringify([listItem, full, store.error?.message, panelState(selected), (inbox.value ?? []).map((i) => [i.message_id, i.headline])]);
  if (signature === shown && pane.firstChild) return;
  shown = signature;
  keepFocus(pane, () =>
    fill(
      pane,
      h(
        'article',
        { class: ['detail', `detail-${item.priority.toLowerCase()}`], 'aria-labelledby': 'detail-title' },
        h(
          'header',
          { class: 'detail-head' },
          h('p', { class: 'badges' }, priorityBadge(item.priority), tlpBadge(item.tlp), kindBadge(item.kind), h('span', { class: 'badge tier', text: `your tier: ${item.tier}` })),
          h('h2', { id: 'detail-title', tabindex: '-1', text: item.headline ?? '(content purged after expiry)' }),
          item.event ? h('p', { class: 'event', text: item.event }) : null,
        ),
        threadBanner(item),
        h(
          'dl',
          { class: 'meta' },
          h('div', {}, h('dt', { text: 'From' }), h('dd', { text: item.origin })),
          h('div', {}, h('dt', { text: 'Sent' }), h('dd', {}, timeEl(item.created))),
          h('div', {}, h('dt', { text: 'Received' }), h('dd', {}, timeEl(item.received_at))),
          h('div', {}, h('dt', { text: 'Expires' }), h('dd', {}, timeEl(item.expires, { future: 'in {}', past: 'expired {} ago', soonMs: SOON_MS }))),
          content.category
            ? h('div', {}, h('dt', { text: 'CAP' }), h('dd', { text: `${content.category} · urgency ${content.urgency} · severity ${content.severity} · certainty ${content.certainty}` }))
            : null,
          h('div', {}, h('dt', { text: 'Message' }), h('dd', {}, h('code', { text: item.message_id }))),
        ),
        h(
          'p',
          { class: 'sections-line visible-line' },
          icon('eye'),
          `visible to your agency: ${sectionNames(['headline', ...(item.sections_visible ?? [])]).join(', ')}`,
        ),
        withheld.length
          ? h('p', { class: 'sections-line withheld-line', id: 'withheld' }, icon('lock'), `withheld: ${sectionNames(withheld).join(', ')}`, h('span', { class: 'hint', text: ` — not sealed for tier “${item.tier}”.` }))
          : null,
        item.purged ? h('p', { class: 'banner', text: 'The content was purged after the alert expired; only the metadata remains.' }) : null,
        !full && !item.purged ? h('p', { class: 'placeholder', text: store.error ? `Could not open the alert: ${store.error.message}` : 'Opening…' }) : null,
        visible.map((s) => section(s[0].toUpperCase() + s.slice(1), h('p', { class: 'section-text', text: content[s] }), { dataset: { section: s } })),
        Array.isArray(content.attachments) && content.attachments.length ? section('Attachments', attachmentList(content.attachments), { dataset: { section: 'attachments' } }) : null,
        can.ack() ? ackPanel(item) : null,
      ),
    ),
  );
}

/** Open an alert; with focus, move keyboard focus to its row (j/k) or heading (links). */
export function select(id, { focus = false, heading = false } = {}) {
  selected = id;
  if (!root) return;
  for (const el of root.querySelectorAll('.alert-row')) {
    const on = el.dataset.id === id;
    el.classList.toggle('selected', on);
    if (on) el.setAttribute('aria-current', 'true');
    else el.removeAttribute('aria-current');
  }
  renderDetail();
  inboxItems.get(id).refresh();
  if (focus) {
    const target = heading ? root.querySelector('#detail-title') : root.querySelector(`.alert-row[data-id="${id}"]`);
    target?.focus();
    target?.scrollIntoView({ block: 'nearest' });
  }
}

export const inboxView = {
  id: 'inbox',
  title: 'Inbox',
  mount(main, params) {
    root = h(
      'div',
      { class: 'split' },
      h(
        'section',
        { class: 'list-pane', 'aria-labelledby': 'inbox-title' },
        h('h1', { id: 'inbox-title', tabindex: '-1', text: 'Inbox' }),
        h('p', { class: 'list-summary', id: 'inbox-summary', role: 'status' }),
        h('ol', { class: 'alert-list', id: 'inbox-list', 'aria-label': 'Alerts, most urgent first' }),
      ),
      h('div', { class: 'detail-pane', id: 'inbox-detail' }),
    );
    fill(main, root);
    shown = '';
    if (params.id) selected = params.id;
    unsubscribe = [
      inbox.subscribe(() => {
        renderList();
        renderDetail();
      }),
      inboxItems.subscribe((id) => {
        if (id === selected) renderDetail();
      }),
    ];
    renderList();
    renderDetail();
    inbox.refresh();
    if (selected) inboxItems.get(selected).refresh();
  },
  unmount() {
    for (const off of unsubscribe) off();
    unsubscribe = [];
    root = null;
  },
  onKey(key) {
    if (key === 'j' || key === 'k') {
      const ids = order(inbox.value ?? []).map((i) => i.message_id);
      if (!ids.length) return true;
      const at = ids.indexOf(selected);
      const next = at < 0 ? 0 : Math.max(0, Math.min(ids.length - 1, at + (key === 'j' ? 1 : -1)));
      select(ids[next], { focus: true });
      return true;
    }
    const pane = root?.querySelector('#inbox-detail');
    return pane && can.ack() ? ackKey(pane, key) : false;
  },
};
