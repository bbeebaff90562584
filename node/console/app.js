// The console shell: session, header, routing (#/inbox, #/compose, #/sent/<id>, #/federation,
// #/audit), the live feed, attention for urgent arrivals, shortcuts and the 1 s ticker that
// keeps every relative time and countdown current.

import { api, setCsrfToken, whenSessionLost } from './api.js';
import { auditView } from './audit.js';
import { boardView, refreshOpen } from './board.js';
import { URGENT } from './badges.js';
import { tick } from './clock.js';
import { composeView } from './compose.js';
import { audit, awaitingAck, federation, inbox, inboxItems, sent, sentItems } from './data.js';
import { federationView } from './federation.js';
import { inboxView } from './inbox.js';
import { installShortcuts } from './keys.js';
import { LiveFeed } from './live.js';
import { showLogin } from './login.js';
import { alertsEnabled, announce, disableAlerts, enableAlerts, urgentArrived } from './notify.js';
import { can, session, signIn } from './session.js';

const VIEWS = { inbox: inboxView, compose: composeView, sent: boardView, federation: federationView, audit: auditView };
const ALLOWED = { inbox: () => can.readInbox(), compose: () => can.send(), audit: () => can.readAudit(), sent: () => true, federation: () => true };
const LIVE_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline, retrying' };

const $ = (id) => document.getElementById(id);
let current = null;
let feed = null;
let waiting = 0;

function defaultView() {
  return can.readInbox() ? 'inbox' : 'sent';
}

function parseHash() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [view, id] = path.split('/');
  const params = Object.fromEntries(new URLSearchParams(query));
  if (id && /^[0-9a-f]{32}$/.test(id)) params.id = id;
  if (params.ref && !/^[0-9a-f]{32}$/.test(params.ref)) delete params.ref;
  if (params.kind && !['update', 'cancel'].includes(params.kind)) delete params.kind;
  return { view, params };
}

function setTitle() {
  const node = session.nodeId ? ` ${session.nodeId}` : '';
  document.title = `${waiting ? `(${waiting}) ` : ''}${current?.title ?? 'Sign in'} · Heliograph${node}`;
}

function route({ focus = true } = {}) {
  if (!session.role) return;
  let { view, params } = parseHash();
  if (!VIEWS[view] || !ALLOWED[view]()) {
    view = defaultView();
    history.replaceState(null, '', `#/${view}`);
    params = {};
  }
  current?.unmount();
  current = VIEWS[view];
  current.mount($('main'), params);
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  setTitle();
  if (focus) $('main').querySelector('h1')?.focus();
}

export function go(view, id) {
  location.hash = id ? `#/${view}/${id}` : `#/${view}`;
}

function onEvent(kind, data) {
  switch (kind) {
    case 'inbox':
      if (can.readInbox()) inbox.refresh();
      break;
    case 'ack':
      if (data.direction === 'out' && can.readInbox()) {
        inbox.refresh();
        inboxItems.get(data.message_id).refresh();
      } else {
        sent.refresh();
        refreshOpen();
      }
      break;
    case 'sent':
    case 'receipt':
    case 'escalated':
    case 'escalation':
      sent.refresh();
      refreshOpen();
      break;
    case 'purged':
      inboxItems.clear();
      sentItems.clear();
      resync();
      break;
    default:
  }
}

function resync() {
  federation.refresh();
  if (can.readInbox()) inbox.refresh();
  sent.refresh();
  refreshOpen();
  if (can.readAudit() && current === auditView) audit.refresh();
}

function watchInbox() {
  inbox.subscribe((items, previous) => {
    if (!items) return;
    waiting = items.filter(awaitingAck).length;
    const badge = $('inbox-count');
    badge.textContent = waiting ? String(waiting) : '';
    badge.setAttribute('aria-label', waiting ? `${waiting} awaiting acknowledgement` : '');
    setTitle();
    if (!previous) return;
    const known = new Set(previous.map((i) => i.message_id));
    for (const item of items) {
      if (known.has(item.message_id)) continue;
      const urgent = URGENT.has(item.priority);
      announce(`New ${item.priority} ${item.kind} from ${item.origin}: ${item.headline ?? ''}`, { urgent });
      if (urgent) urgentArrived(item, (id) => go('inbox', id));
    }
  });
}

async function startSession(me) {
  setCsrfToken(me.csrf_token ?? null);
  signIn(me);
  try {
    await federation.refresh();
  } finally {
    session.nodeId = federation.value?.me ?? null;
  }
  $('node-id').textContent = session.nodeId ?? '';
  $('who').textContent = `${me.username} · ${me.role}`;
  for (const li of document.querySelectorAll('#nav li[data-needs]')) {
    const need = li.dataset.needs;
    li.hidden = !(need === 'inbox' ? can.readInbox() : need === 'send' ? can.send() : can.readAudit());
  }
  $('alerts-toggle').hidden = !can.readInbox();
  $('nav').hidden = false;
  $('session-bar').hidden = false;
  document.body.classList.add('signed-in');
  feed = new LiveFeed({
    onEvent,
    onConnected: resync,
    onStatus: (status) => {
      const el = $('live-status');
      el.textContent = LIVE_TEXT[status] ?? status;
      el.dataset.status = status;
    },
  });
  feed.start();
  if (can.readInbox()) inbox.refresh();
  route({ focus: false });
}

function endSession(message) {
  feed?.stop();
  // A full reload drops every byte of alert content the page held in memory.
  if (session.role) {
    location.replace('/#/session-ended');
    return;
  }
  showLogin($('main'), { message, onSignedIn: startSession });
}

function wireHeader() {
  $('logout').addEventListener('click', async () => {
    try {
      await api('DELETE', '/v1/session');
    } finally {
      feed?.stop();
      location.replace('/');
    }
  });
  $('help-button').addEventListener('click', () => $('help-dialog').showModal());
  const toggle = $('alerts-toggle');
  toggle.addEventListener('click', async () => {
    if (alertsEnabled()) {
      disableAlerts();
      toggle.setAttribute('aria-pressed', 'false');
      toggle.textContent = 'Alert sound: off';
      toggle.title = 'Sound and desktop notification for FLASH and IMMEDIATE alerts';
      return;
    }
    const permission = await enableAlerts();
    toggle.setAttribute('aria-pressed', 'true');
    toggle.textContent = permission === 'granted' ? 'Alert sound: on' : 'Alert sound: on (no desktop notifications)';
    toggle.title = permission === 'granted' ? 'FLASH and IMMEDIATE alerts play a sound and show a desktop notification' : 'The browser blocks desktop notifications for this page';
  });
}

async function boot() {
  wireHeader();
  installShortcuts({
    onViewKey: (key) => current?.onKey(key) ?? false,
    go: (view) => ALLOWED[view]?.() && go(view),
    help: () => $('help-dialog').showModal(),
  });
  window.addEventListener('hashchange', () => route());
  setInterval(() => tick(), 1000);
  whenSessionLost(() => endSession('Your session has ended. Sign in again.'));
  watchInbox();
  let me = null;
  try {
    me = await api('GET', '/v1/session', undefined, { quietUnauthenticated: true });
  } catch {
    me = null;
  }
  if (me && me.csrf_token) await startSession(me);
  else {
    const ended = location.hash === '#/session-ended';
    showLogin($('main'), { message: ended ? 'Your session has ended. Sign in again.' : '', onSignedIn: startSession });
  }
}

boot();
