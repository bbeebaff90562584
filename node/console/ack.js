// The acknowledge panel of an inbox item: accept, received, or reject with a reason, each with an
// optional comment. Drafts (comment, reason) are kept per alert in memory, so a live refresh of
// the item never wipes what the officer is typing.

import { api, ApiError, explain } from './api.js';
import { localTime } from './clock.js';
import { finalAck, inbox, inboxItems } from './data.js';
import { h } from './dom.js';
import { icon } from './icons.js';
import { announce } from './notify.js';

const drafts = new Map(); // message id -> {comment, reason, rejecting, status}

function draftFor(id) {
  if (!drafts.has(id)) drafts.set(id, { comment: '', reason: '', rejecting: false, status: null });
  return drafts.get(id);
}

/** What of the panel's state a re-render must reflect (not the text being typed, which is kept). */
export function panelState(id) {
  const draft = drafts.get(id);
  return draft ? [draft.status, draft.rejecting] : null;
}

const DONE_TEXT = {
  accepted: 'Accepted. The sender sees your acceptance on their delivery board.',
  received: 'Marked as received. Accept or reject once you have decided.',
  rejected: 'Rejected. The sender sees your reason on their delivery board.',
};

async function send(item, disposition, panel) {
  const draft = draftFor(item.message_id);
  const body = { disposition };
  if (disposition === 'rejected') body.reason = draft.reason.trim();
  if (draft.comment.trim()) body.comment = draft.comment.trim();
  setBusy(panel, true);
  try {
    await api('POST', `/v1/inbox/${item.message_id}/ack`, body);
    drafts.set(item.message_id, { comment: '', reason: '', rejecting: false, status: { ok: true, text: DONE_TEXT[disposition] } });
    announce(DONE_TEXT[disposition]);
  } catch (err) {
    const fields = err instanceof ApiError ? Object.entries(err.fields) : [];
    const text = fields.length ? fields.map(([path, sentence]) => `${path}: ${sentence}`).join(' ') : explain(err);
    draft.status = { ok: false, text };
  }
  await Promise.all([inbox.refresh(), inboxItems.get(item.message_id).refresh()]);
}

function setBusy(panel, busy) {
  for (const button of panel.querySelectorAll('button')) button.disabled = busy;
  panel.setAttribute('aria-busy', busy ? 'true' : 'false');
}

/** The panel element for item (a full GET /v1/inbox/{id} answer). */
export function ackPanel(item) {
  const id = item.message_id;
  const draft = draftFor(id);
  const final = finalAck(item);
  const given = new Set((item.acks ?? []).map((a) => a.disposition));
  const history = (item.acks ?? []).map((a) =>
    h('li', {}, icon(a.disposition === 'rejected' ? 'x' : a.disposition === 'received' ? 'eye' : 'check'), `${a.disposition} by ${a.officer} at ${localTime(a.at)}`),
  );

  const panel = h('section', { class: 'ack-panel', 'aria-labelledby': 'ack-title' });
  panel.append(h('h3', { id: 'ack-title', text: 'Acknowledge' }));
  if (history.length) panel.append(h('ul', { class: 'ack-history' }, history));
  if (draft.status) panel.append(h('p', { class: ['ack-status', draft.status.ok ? 'ok' : 'error'], role: 'status', text: draft.status.text }));

  if (final) {
    panel.append(h('p', { class: 'ack-final', text: `Your agency has ${final.disposition} this alert; the sender has been told.` }));
    return panel;
  }
  if (item.purged) {
    panel.append(h('p', { class: 'hint', text: 'The content was purged after expiry; it can no longer be acknowledged.' }));
    return panel;
  }

  const comment = h('textarea', {
    id: 'ack-comment',
    rows: 2,
    maxlength: 2000,
    dataset: { focusKey: 'ack-comment' },
    'aria-describedby': 'ack-comment-hint',
    on: { input: (e) => (draft.comment = e.target.value) },
  });
  comment.value = draft.comment;
  panel.append(
    h('div', { class: 'field' }, h('label', { for: 'ack-comment', text: 'Comment (optional)' }), h('p', { class: 'hint', id: 'ack-comment-hint', text: `Sent to ${item.origin} with your acknowledgement.` }), comment),
  );

  const keyHint = (k) => h('kbd', { 'aria-hidden': 'true', text: k });
  const buttons = h('div', { class: 'ack-buttons' });
  buttons.append(
    h('button', { type: 'button', class: 'btn btn-accept', id: 'ack-accept', 'aria-keyshortcuts': 'a', dataset: { focusKey: 'ack-accept' }, on: { click: () => send(item, 'accepted', panel) } }, icon('check'), 'Accept', keyHint('a')),
  );
  if (!given.has('received')) {
    buttons.append(
      h('button', { type: 'button', class: 'btn', id: 'ack-received', 'aria-keyshortcuts': 'v', dataset: { focusKey: 'ack-received' }, on: { click: () => send(item, 'received', panel) } }, icon('eye'), 'Received', keyHint('v')),
    );
  }
  const rejectToggle = h(
    'button',
    {
      type: 'button',
      class: 'btn btn-reject',
      id: 'ack-reject',
      'aria-keyshortcuts': 'r',
      'aria-expanded': draft.rejecting ? 'true' : 'false',
      'aria-controls': 'reject-form',
      dataset: { focusKey: 'ack-reject' },
      on: { click: () => openReject(panel, draft) },
    },
    icon('x'),
    'Reject…',
    keyHint('r'),
  );
  buttons.append(rejectToggle);
  panel.append(buttons);

  const reason = h('textarea', { id: 'ack-reason', rows: 2, maxlength: 500, required: true, dataset: { focusKey: 'ack-reason' }, on: { input: (e) => (draft.reason = e.target.value) } });
  reason.value = draft.reason;
  const reasonError = h('p', { class: 'field-error', id: 'ack-reason-error', hidden: true });
  const form = h(
    'form',
    {
      id: 'reject-form',
      class: 'reject-form',
      hidden: !draft.rejecting,
      novalidate: true,
      on: {
        submit: (e) => {
          e.preventDefault();
          if (!draft.reason.trim()) {
            reasonError.textContent = 'Say why you reject it; the sender needs to know.';
            reasonError.hidden = false;
            reason.setAttribute('aria-invalid', 'true');
            reason.setAttribute('aria-describedby', reasonError.id);
            reason.focus();
            return;
          }
          send(item, 'rejected', panel);
        },
      },
    },
    h('div', { class: 'field' }, h('label', { for: 'ack-reason', text: 'Reason for rejecting (required)' }), reason, reasonError),
    h(
      'div',
      { class: 'ack-buttons' },
      h('button', { type: 'submit', class: 'btn btn-reject', dataset: { focusKey: 'reject-send' } }, 'Send rejection'),
      h('button', { type: 'button', class: 'btn btn-quiet', on: { click: () => closeReject(panel, draft) } }, 'Cancel'),
    ),
  );
  panel.append(form);
  return panel;
}

function openReject(panel, draft) {
  draft.rejecting = true;
  panel.querySelector('#reject-form').hidden = false;
  panel.querySelector('#ack-reject').setAttribute('aria-expanded', 'true');
  panel.querySelector('#ack-reason').focus();
}

function closeReject(panel, draft) {
  draft.rejecting = false;
  panel.querySelector('#reject-form').hidden = true;
  const toggle = panel.querySelector('#ack-reject');
  toggle.setAttribute('aria-expanded', 'false');
  toggle.focus();
}

/** Keyboard: a/v/r/c act on the panel inside root, if it offers that action. */
export function ackKey(root, key) {
  const target = { a: '#ack-accept', v: '#ack-received', r: '#ack-reject', c: '#ack-comment' }[key];
  const el = target && root.querySelector(target);
  if (!el) return false;
  if (key === 'c') el.focus();
  else el.click();
  return true;
}
