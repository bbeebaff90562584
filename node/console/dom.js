// Building the DOM without HTML strings. Every piece of data becomes a text node
// or a property, never markup, so nothing an alert says can become HTML or script.
// (The CSP also enforces Trusted Types: assigning an HTML string to any sink would throw.)

const PROPERTIES = new Set(['value', 'checked', 'selected', 'indeterminate']);

/**
 * Create an element: h('button', {class: 'btn', on: {click}}, 'Accept').
 * Props: class (string or array), text, on ({event: handler}), dataset, value/checked/selected
 * (set as properties); anything else is set as an attribute (true -> '', false/null -> skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && key !== 'on') throw new Error(`use {on: {...}} for handlers, not ${key}`);
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'on') for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Append children: nodes as they are, strings and numbers as text, arrays flattened, null/false skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace everything inside el with children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A label + control pair with an error slot, for forms; path is the API field path it answers for. */
export function field({ id, label, control, hint, path, wide }) {
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint`, text: hint }) : null;
  const errorEl = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  control.id = id;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: ['field', wide && 'field-wide'], dataset: path ? { path } : {} }, h('label', { for: id, text: label }), hintEl, control, errorEl);
}

/** A short, stable id for DOM ids derived from arbitrary text (member ids, tier names). */
export function slug(text) {
  return String(text).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'x';
}

/**
 * Re-render a region without losing the user's place: the element that had focus is found
 * again by its data-focus-key after render() and focused, so live updates don't steal focus.
 */
export function keepFocus(region, render) {
  const active = document.activeElement;
  const key = active && region.contains(active) ? active.dataset.focusKey : undefined;
  const caret = key && 'selectionStart' in active ? [active.selectionStart, active.selectionEnd] : null;
  render();
  if (key) {
    const again = [...region.querySelectorAll('[data-focus-key]')].find((el) => el.dataset.focusKey === key);
    if (again) {
      again.focus({ preventScroll: true });
      if (caret && 'setSelectionRange' in again) again.setSelectionRange(...caret);
    }
  }
}
