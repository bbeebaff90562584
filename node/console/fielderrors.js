// Field-level errors from the API (422 E_VALIDATION: {"fields": {"tiers[0].recipients[0]": "..."}})
// placed next to the control that produced them. A path is matched against the data-path of the
// form's containers, dropping its last step until one matches ("tiers[0].recipients[0]" ->
// "tiers[0].recipients"); the dropped index names what it was ("fr-police: ..."). Paths no
// container answers for (including "$", the body itself) are listed in the summary box.

import { append, fill, h } from './dom.js';

function steps(path) {
  return path.match(/[^.[\]]+|\[\d+\]/g) ?? [];
}

function join(parts) {
  return parts.reduce((acc, p) => (p.startsWith('[') ? acc + p : acc ? `${acc}.${p}` : p), '');
}

function valueAt(body, parts) {
  let value = body;
  for (const p of parts) {
    if (value === null || value === undefined) return undefined;
    value = p.startsWith('[') ? value[Number(p.slice(1, -1))] : value[p];
  }
  return value;
}

function describeValue(value) {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof value.name === 'string') return value.name;
  return null;
}

/** The container for path, and a prefix naming the array element the error is about. */
export function locate(form, path, body) {
  const parts = steps(path);
  for (let n = parts.length; n > 0; n--) {
    const candidate = join(parts.slice(0, n));
    const container = [...form.querySelectorAll('[data-path]')].find((el) => el.dataset.path === candidate);
    if (container) {
      const rest = parts.slice(n);
      const index = rest.findIndex((p) => p.startsWith('['));
      const named = index >= 0 ? describeValue(valueAt(body, parts.slice(0, n + index + 1))) : null;
      return { container, prefix: named ? `${named}: ` : '' };
    }
  }
  return null;
}

export function clearErrors(form, summary) {
  for (const el of form.querySelectorAll('.field-error')) {
    el.textContent = '';
    el.hidden = true;
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    const ids = (el.getAttribute('aria-describedby') ?? '').split(' ').filter((id) => id && !id.endsWith('-error'));
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
    else el.removeAttribute('aria-describedby');
  }
  for (const el of form.querySelectorAll('.has-error')) el.classList.remove('has-error');
  summary.hidden = true;
  fill(summary.querySelector('ul'));
}

function controlOf(container) {
  if (container.matches('input, select, textarea')) return container;
  return container.querySelector('[data-error-target]') ?? container.querySelector('input:not([disabled]), select, textarea');
}

function errorSlot(container) {
  return [...container.querySelectorAll('.field-error')].find((el) => el.closest('[data-path]') === container);
}

/**
 * Show fields ({path: sentence}) next to their controls and in the summary; focus the summary.
 * messages: extra sentences with no path (e.g. a 403). Returns the number of placed errors.
 */
export function showErrors(form, summary, fields, body, messages = []) {
  clearErrors(form, summary);
  const list = summary.querySelector('ul');
  let placed = 0;
  for (const text of messages) list.append(h('li', { text }));
  for (const [path, sentence] of Object.entries(fields)) {
    const found = path === '$' ? null : locate(form, path, body);
    const slot = found && errorSlot(found.container);
    if (!slot) {
      list.append(h('li', {}, h('code', { text: path }), ` ${sentence}`));
      continue;
    }
    placed += 1;
    const text = `${found.prefix}${sentence}`;
    slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
    slot.hidden = false;
    found.container.classList.add('has-error');
    const control = controlOf(found.container);
    if (control) {
      control.setAttribute('aria-invalid', 'true');
      const ids = new Set((control.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean));
      ids.add(slot.id);
      control.setAttribute('aria-describedby', [...ids].join(' '));
    }
    const label = found.container.querySelector('label, legend')?.textContent?.trim() ?? path;
    append(list, [
      h(
        'li',
        {},
        h('button', { type: 'button', class: 'linklike', on: { click: () => (control ?? found.container).focus() } }, label),
        `: ${text}`,
      ),
    ]);
  }
  summary.hidden = false;
  summary.focus();
  return placed;
}
