// Compose view: the alert form (CAP enums, precedence, TLP, expiry, sections, attachments),
// the tier builder, and a live preview of who will see what. The form is kept in memory while
// the officer looks elsewhere and dropped after a successful send. Validation is the node's:
// its field errors (422) are shown next to the fields they name.

import { api, ApiError, explain } from './api.js';
import { PRECEDENCE, priorityBadge, tlpBadge } from './badges.js';
import { localTime, parseDuration, serverNow, span, toLocalInput } from './clock.js';
import { federation, sent } from './data.js';
import { field, fill, h } from './dom.js';
import { clearErrors, showErrors } from './fielderrors.js';
import { icon } from './icons.js';
import { announce } from './notify.js';
import { describe } from './preview.js';
import { TierBuilder } from './tiers.js';

const CATEGORIES = ['Geo', 'Met', 'Safety', 'Security', 'Rescue', 'Fire', 'Health', 'Env', 'Transport', 'Infra', 'CBRNE', 'Other'];
const URGENCIES = ['Immediate', 'Expected', 'Future', 'Past', 'Unknown'];
const SEVERITIES = ['Extreme', 'Severe', 'Moderate', 'Minor', 'Unknown'];
const CERTAINTIES = ['Observed', 'Likely', 'Possible', 'Unlikely', 'Unknown'];
const LABELS = ['TLP:RED', 'TLP:AMBER+STRICT', 'TLP:AMBER', 'TLP:GREEN', 'TLP:CLEAR'];
const PRECEDENCE_HELP = {
  FLASH: 'life at risk; minutes count',
  IMMEDIATE: 'act within the hour',
  PRIORITY: 'act today',
  ROUTINE: 'for information',
};
const TEXT_SECTIONS = ['summary', 'details', 'instructions'];
const MAX_FILES = 5;
const MAX_FILE_BYTES = 256 * 1024;

let draft = null; // {root, form, ...} while an alert is being written
export let lastSent = null; // {message_id, priority}: the board shows a confirmation once

function select(id, options, { placeholder = 'Choose…', value = '' } = {}) {
  return h('select', { id, required: true }, placeholder ? h('option', { value: '', text: placeholder }) : null, options.map((o) => h('option', { value: o, text: o, selected: o === value })));
}

function radios(name, values, { checked, label, path, render = (v) => v }) {
  return h(
    'fieldset',
    { class: 'radios', dataset: { path } },
    h('legend', { text: label }),
    h(
      'div',
      { class: 'radio-row' },
      values.map((v) => {
        const id = `${name}-${v.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
        return h('div', { class: 'radio' }, h('input', { type: 'radio', name, id, value: v, checked: v === checked }), h('label', { for: id }, render(v)));
      }),
    ),
    h('p', { class: 'field-error', id: `${name}-error`, hidden: true }),
  );
}

function textField(id, label, path, { rows = 0, maxlength, hint, wide = true } = {}) {
  const control = rows ? h('textarea', { rows, maxlength }) : h('input', { type: 'text', maxlength, autocomplete: 'off' });
  return field({ id, label, control, hint, path, wide });
}

function buildDraft() {
  const d = { attachments: [] };
  d.tiers = new TierBuilder({ onChange: () => updatePreview(d) });
  d.summary = h('div', { class: 'error-summary', id: 'error-summary', role: 'alert', tabindex: '-1', hidden: true }, h('h2', { text: 'The node did not accept the alert' }), h('ul'));
  const fileInput = h('input', { type: 'file', multiple: true, 'aria-describedby': 'attachments-hint' });
  d.fileList = h('ul', { class: 'file-list' });
  const refSelect = h('select', {});
  d.refSelect = refSelect;
  d.form = h(
    'form',
    {
      id: 'compose-form',
      class: 'compose-form',
      novalidate: true,
      'aria-labelledby': 'compose-title',
      on: { submit: (e) => submit(e, d), input: () => updatePreview(d), change: () => updatePreview(d) },
    },
    d.summary,
    h(
      'fieldset',
      { class: 'group' },
      h('legend', { text: 'Message' }),
      radios('kind', ['alert', 'update', 'cancel'], { checked: 'alert', label: 'Type', path: 'kind', render: (v) => ({ alert: 'New alert', update: 'Update of a sent alert', cancel: 'Cancel a sent alert' })[v] }),
      h('div', { class: 'references', hidden: true }, field({ id: 'references', label: 'Alert it updates or cancels', control: refSelect, path: 'references' })),
      radios('priority', PRECEDENCE, {
        checked: 'PRIORITY',
        label: 'Precedence',
        path: 'priority',
        render: (v) => [priorityBadge(v), h('span', { class: 'radio-help', text: PRECEDENCE_HELP[v] })],
      }),
      radios('tlp', LABELS, { checked: 'TLP:AMBER', label: 'Traffic Light Protocol', path: 'tlp', render: (v) => tlpBadge(v) }),
    ),
    h(
      'fieldset',
      { class: 'group' },
      h('legend', { text: 'What happened (CAP)' }),
      textField('event', 'Event', 'event', { maxlength: 200, hint: 'One line: the kind of event, e.g. "Armed robbery suspects crossing border".' }),
      h(
        'div',
        { class: 'grid-4' },
        field({ id: 'category', label: 'Category', control: select('category', CATEGORIES, { value: 'Security' }), path: 'category' }),
        field({ id: 'urgency', label: 'Urgency', control: select('urgency', URGENCIES), path: 'urgency' }),
        field({ id: 'severity', label: 'Severity', control: select('severity', SEVERITIES), path: 'severity' }),
        field({ id: 'certainty', label: 'Certainty', control: select('certainty', CERTAINTIES), path: 'certainty' }),
      ),
    ),
    h(
      'fieldset',
      { class: 'group' },
      h('legend', { text: 'Content' }),
      textField('headline', 'Headline (every tier sees it)', 'sections.headline', { maxlength: 160 }),
      textField('summary', 'Summary', 'sections.summary', { rows: 3, hint: 'Required for an alert or update; at most 2 KiB.' }),
      textField('details', 'Details (optional)', 'sections.details', { rows: 5 }),
      textField('instructions', 'Instructions (optional)', 'sections.instructions', { rows: 3 }),
      h(
        'div',
        { class: 'field field-wide', dataset: { path: 'sections.attachments' } },
        h('label', { for: 'attachments', text: 'Attachments (optional)' }),
        h('p', { class: 'hint', id: 'attachments-hint', text: `Up to ${MAX_FILES} files of at most 256 KiB each, 512 KiB in all.` }),
        Object.assign(fileInput, { id: 'attachments' }),
        d.fileList,
        h('p', { class: 'field-error', id: 'attachments-error', hidden: true }),
      ),
    ),
    h(
      'fieldset',
      { class: 'group expiry', dataset: { path: 'expires' } },
      h('legend', { text: 'Expiry' }),
      h(
        'div',
        { class: 'radio-row' },
        h(
          'div',
          { class: 'radio' },
          h('input', { type: 'radio', name: 'expiry-mode', id: 'expiry-ttl-mode', value: 'ttl', checked: true }),
          h('label', { for: 'expiry-ttl-mode', text: 'Expires after' }),
          h('input', { type: 'text', id: 'expiry-ttl', value: '6h', class: 'short', 'aria-label': 'Expires after (duration)', autocomplete: 'off', 'aria-describedby': 'expiry-hint', dataset: { errorTarget: '' } }),
        ),
        h(
          'div',
          { class: 'radio' },
          h('input', { type: 'radio', name: 'expiry-mode', id: 'expiry-at-mode', value: 'at' }),
          h('label', { for: 'expiry-at-mode', text: 'Expires at' }),
          h('input', { type: 'datetime-local', id: 'expiry-at', value: toLocalInput(serverNow() + 6 * 3_600_000), 'aria-label': 'Expires at (local time)' }),
        ),
      ),
      h('p', { class: 'hint', id: 'expiry-hint', text: 'A duration such as 90m, 6h or 2d, or a local date and time.' }),
      h('p', { class: 'field-error', id: 'expires-error', hidden: true }),
    ),
    d.tiers.el,
  );
  fileInput.addEventListener('change', () => addFiles(d, fileInput));
  d.form.querySelectorAll('input[name="kind"]').forEach((r) => r.addEventListener('change', () => kindChanged(d)));
  d.sendButton = h('button', { type: 'submit', form: 'compose-form', class: 'btn btn-send', id: 'send-alert' });
  d.status = h('p', { class: 'send-status', role: 'status' });
  d.preview = h('div', { class: 'preview-body', id: 'preview-body' });
  d.root = h(
    'div',
    { class: 'compose' },
    h('h1', { id: 'compose-title', tabindex: '-1', text: 'Compose alert' }),
    h(
      'div',
      { class: 'compose-layout' },
      d.form,
      h(
        'aside',
        { class: 'preview', 'aria-labelledby': 'preview-title' },
        h('h2', { id: 'preview-title', text: 'Preview: who will see what' }),
        d.preview,
        h('div', { class: 'send-row' }, d.sendButton, h('button', { type: 'button', class: 'btn btn-quiet', on: { click: () => discard() } }, 'Discard draft')),
        d.status,
      ),
    ),
  );
  d.tiers.reset([{}]);
  return d;
}

function value(d, id) {
  return d.form.querySelector(`#${id}`)?.value ?? '';
}

function checked(d, name) {
  return d.form.querySelector(`input[name="${name}"]:checked`)?.value ?? '';
}

/** The POST /v1/alerts body exactly as it will be sent, plus what the console left out. */
function readRequest(d) {
  const sections = { headline: value(d, 'headline').trim() };
  for (const s of TEXT_SECTIONS) if (value(d, s).trim()) sections[s] = value(d, s);
  if (d.attachments.length) sections.attachments = d.attachments.map(({ name, type, data }) => ({ name, type, data }));
  const present = new Set(Object.keys(sections));
  const body = { kind: checked(d, 'kind') };
  if (body.kind !== 'alert') body.references = value(d, 'references') ? [value(d, 'references')] : [];
  for (const key of ['category', 'urgency', 'severity', 'certainty']) if (value(d, key)) body[key] = value(d, key);
  body.event = value(d, 'event').trim();
  body.priority = checked(d, 'priority');
  body.tlp = checked(d, 'tlp');
  if (checked(d, 'expiry-mode') === 'at') {
    const at = new Date(value(d, 'expiry-at'));
    body.expires = Number.isNaN(at.getTime()) ? value(d, 'expiry-at') : at.toISOString().replace('.000Z', 'Z');
  } else {
    body.expires = { ttl: value(d, 'expiry-ttl').trim() };
  }
  body.sections = sections;
  body.tiers = d.tiers.request(present);
  return { body, dropped: d.tiers.dropped(present) };
}

function expiryText(body) {
  if (typeof body.expires === 'string') {
    const at = Date.parse(body.expires);
    return Number.isNaN(at) ? 'expiry not set' : `expires at ${localTime(at)} (in ${span(at - serverNow())})`;
  }
  const ttl = parseDuration(body.expires.ttl);
  return ttl === null ? 'expiry not set' : `expires in ${body.expires.ttl} (at ${localTime(serverNow() + ttl)})`;
}

function updatePreview(d) {
  const { body, dropped } = readRequest(d);
  const { recipients, notes, warnings } = describe(body, { dropped });
  d.sendButton.replaceChildren(icon('send'), `Send ${body.priority} ${body.kind === 'alert' ? 'alert' : body.kind}`);
  d.sendButton.className = `btn btn-send send-${body.priority.toLowerCase()}`;
  fill(
    d.preview,
    h('p', { class: 'preview-head' }, priorityBadge(body.priority), tlpBadge(body.tlp), h('span', { text: expiryText(body) })),
    h('p', { class: 'preview-headline', text: body.sections.headline || '(no headline yet)' }),
    recipients.length
      ? h(
          'ul',
          { class: 'preview-list', id: 'preview-list' },
          recipients.map((r) => h('li', { class: r.held ? 'held' : null }, icon(r.held ? 'pause' : 'eye'), h('span', { text: r.text }))),
        )
      : null,
    warnings.map((w) => h('p', { class: 'preview-warning' }, icon('alert'), w)),
    notes.map((n) => h('p', { class: 'hint', text: n })),
    h('p', { class: 'hint', text: 'Gateways on the way see only routing metadata (sender, recipients, precedence, TLP, times, size) and can open no section.' }),
  );
}

function kindChanged(d) {
  const kind = checked(d, 'kind');
  d.form.querySelector('.references').hidden = kind === 'alert';
  if (kind !== 'alert') fillReferences(d);
}

function fillReferences(d, chosen) {
  const current = chosen ?? d.refSelect.value;
  const alerts = (sent.value ?? []).filter((a) => a.status !== 'cancelled' && a.kind !== 'cancel');
  fill(
    d.refSelect,
    h('option', { value: '', text: alerts.length ? 'Choose the alert…' : 'No open alert sent by this agency' }),
    alerts.map((a) => h('option', { value: a.message_id, text: `${a.priority} · ${a.headline ?? '(purged)'} · ${a.message_id.slice(0, 8)}`, selected: a.message_id === current })),
  );
}

function renderFiles(d) {
  fill(
    d.fileList,
    d.attachments.map((f, i) =>
      h(
        'li',
        {},
        icon('file'),
        h('span', { text: `${f.name} (${f.type}, ${f.size.toLocaleString()} bytes)` }),
        h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': `Remove ${f.name}`, on: { click: () => (d.attachments.splice(i, 1), renderFiles(d), updatePreview(d)) } }, 'Remove'),
      ),
    ),
  );
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function addFiles(d, input) {
  const error = d.form.querySelector('#attachments-error');
  const problems = [];
  for (const file of input.files) {
    if (d.attachments.length >= MAX_FILES) problems.push(`${file.name}: at most ${MAX_FILES} files.`);
    else if (file.size > MAX_FILE_BYTES) problems.push(`${file.name}: larger than 256 KiB.`);
    else d.attachments.push({ name: file.name, type: (file.type || 'application/octet-stream').toLowerCase(), size: file.size, data: toBase64(await file.arrayBuffer()) });
  }
  input.value = '';
  error.textContent = problems.join(' ');
  error.hidden = !problems.length;
  renderFiles(d);
  updatePreview(d);
}

async function submit(event, d) {
  event.preventDefault();
  const { body } = readRequest(d);
  clearErrors(d.form, d.summary);
  d.sendButton.disabled = true;
  d.status.textContent = 'Sending…';
  try {
    const answer = await api('POST', '/v1/alerts', body);
    lastSent = { message_id: answer.message_id, priority: body.priority, kind: body.kind };
    announce(`${body.priority} ${body.kind} sent. Opening its delivery board.`);
    draft = null;
    sent.refresh();
    location.hash = `#/sent/${answer.message_id}`;
  } catch (err) {
    d.status.textContent = '';
    if (err instanceof ApiError && err.status === 422 && Object.keys(err.fields).length) {
      const placed = showErrors(d.form, d.summary, err.fields, body);
      d.status.textContent = `Not sent: ${Object.keys(err.fields).length} problem${Object.keys(err.fields).length === 1 ? '' : 's'} to fix (${placed} marked next to the fields).`;
    } else {
      showErrors(d.form, d.summary, {}, body, [explain(err)]);
      d.status.textContent = 'Not sent.';
    }
  } finally {
    d.sendButton.disabled = false;
  }
}

function discard() {
  draft = null;
  if (location.hash === '#/compose') composeView.mount(composeView.main, {});
  else location.hash = '#/compose';
}

function membersFor() {
  const fed = federation.value;
  if (!fed) return [];
  const byId = new Map(fed.members.map((m) => [m.id, m]));
  return fed.recipients.map((id) => byId.get(id) ?? { id });
}

/** Start an update or cancel of a sent alert, prefilled from its delivery status. */
function prefill(d, kind, alert) {
  d.form.querySelector(`#kind-${kind}`).checked = true;
  kindChanged(d);
  fillReferences(d, alert.message_id);
  d.form.querySelector(`#priority-${alert.priority.toLowerCase()}`).checked = true;
  d.form.querySelector(`#tlp-${alert.tlp.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`).checked = true;
  d.form.querySelector('#headline').value = kind === 'cancel' ? `CANCELLED: ${alert.headline ?? ''}`.slice(0, 160) : (alert.headline ?? '');
  d.tiers.reset(
    alert.tiers
      .filter((t) => !t.held)
      .map((t) => ({ name: t.name, recipients: t.recipients, sections: t.sections.filter((s) => s !== 'info') })),
  );
}

export const composeView = {
  id: 'compose',
  title: 'Compose',
  main: null,
  async mount(main, params) {
    this.main = main;
    if (!draft || params.kind) draft = buildDraft();
    draft.tiers.setMembers(membersFor());
    fill(main, draft.root);
    updatePreview(draft);
    if (params.kind && params.ref) {
      if (!sent.value) await sent.refresh();
      const alert = (sent.value ?? []).find((a) => a.message_id === params.ref);
      if (alert) prefill(draft, params.kind, alert);
      updatePreview(draft);
    }
  },
  unmount() {},
  onKey() {
    return false;
  },
};
