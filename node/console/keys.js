// Keyboard shortcuts. A key is ignored while the officer types in a field (so "a" in a comment
// is just a letter) or holds Ctrl/Alt/Meta; "g" starts a two-key "go to" sequence. The view
// in front gets every other key first (j/k/a/r/v/c), see app.js.

const GO = { i: 'inbox', n: 'compose', s: 'sent', f: 'federation', a: 'audit' };
const EDITABLE = 'input, textarea, select, [contenteditable=""], [contenteditable="true"]';

function isTyping(target) {
  return target instanceof Element && target.closest(EDITABLE) !== null;
}

export function installShortcuts({ onViewKey, go, help }) {
  let pendingGo = false;
  let goTimer = null;
  document.addEventListener('keydown', (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) {
      if (event.key === 'Escape') event.target.blur();
      return;
    }
    if (document.querySelector('dialog[open]')) return;
    if (pendingGo) {
      pendingGo = false;
      clearTimeout(goTimer);
      if (GO[event.key]) {
        event.preventDefault();
        go(GO[event.key]);
      }
      return;
    }
    if (event.key === '?') {
      event.preventDefault();
      help();
    } else if (event.key === 'g') {
      pendingGo = true;
      goTimer = setTimeout(() => {
        pendingGo = false;
      }, 1500);
    } else if (onViewKey(event.key)) {
      event.preventDefault();
    }
  });
}
