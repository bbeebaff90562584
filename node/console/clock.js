// Times. The API speaks unix ms on the *server's* clock; the console shows local time plus a
// relative form, and counts down against the server's clock (its offset from ours is taken
// from GET /v1/federation's "now"), so a laptop with a wrong clock still shows true countdowns.

let offsetMs = 0;
const UNITS = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
const LOCAL = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const LOCAL_FULL = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });

export function syncServerTime(serverNowMs) {
  if (Number.isFinite(serverNowMs)) offsetMs = serverNowMs - Date.now();
}

export function serverNow() {
  return Date.now() + offsetMs;
}

/** A duration in its two largest units: 45s, 5m 10s, 2h, 3d 4h. */
export function span(ms) {
  let seconds = Math.floor(Math.abs(ms) / 1000);
  for (let i = 0; i < UNITS.length; i++) {
    const [unit, size] = UNITS[i];
    const s = size / 1000;
    if (seconds >= s || unit === 's') {
      const first = `${Math.floor(seconds / s)}${unit}`;
      seconds %= s;
      const next = UNITS[i + 1];
      const rest = next ? Math.floor(seconds / (next[1] / 1000)) : 0;
      return rest ? `${first} ${rest}${next[0]}` : first;
    }
  }
  return '0s';
}

/** "in 5m 10s", "2h ago", or "now". */
export function relative(ms, now = serverNow()) {
  if (ms === null || ms === undefined) return '–';
  if (Math.abs(ms - now) < 1000) return 'now';
  return ms > now ? `in ${span(ms - now)}` : `${span(now - ms)} ago`;
}

export function localTime(ms) {
  return ms === null || ms === undefined ? '–' : LOCAL.format(new Date(ms));
}

function isoTime(ms) {
  return new Date(ms).toISOString();
}

/**
 * A <time> element showing local time and a live relative form. future/past are templates with
 * {} for the span ("expires in {}" / "expired {} ago"); the ticker in app.js keeps them current.
 */
export function timeEl(ms, { future = 'in {}', past = '{} ago', withClock = true, soonMs = 0 } = {}) {
  const el = document.createElement('time');
  if (ms === null || ms === undefined) {
    el.textContent = '–';
    return el;
  }
  el.dateTime = isoTime(ms);
  el.title = LOCAL_FULL.format(new Date(ms));
  el.dataset.at = String(ms);
  el.dataset.future = future;
  el.dataset.past = past;
  if (soonMs) el.dataset.soon = String(soonMs);
  if (withClock) el.dataset.clock = localTime(ms);
  renderTime(el);
  return el;
}

function renderTime(el, now = serverNow()) {
  const at = Number(el.dataset.at);
  const delta = at - now;
  const template = Math.abs(delta) < 1000 ? null : delta > 0 ? el.dataset.future : el.dataset.past;
  const rel = template === null ? 'now' : template.replace('{}', span(delta));
  el.textContent = el.dataset.clock ? `${el.dataset.clock} (${rel})` : rel;
  if (el.dataset.soon) el.classList.toggle('soon', delta > 0 && delta < Number(el.dataset.soon));
  el.classList.toggle('past', delta <= 0);
}

/** Refresh every live time on the page; called once a second. */
export function tick(root = document) {
  const now = serverNow();
  for (const el of root.querySelectorAll('time[data-at]')) renderTime(el, now);
}

/** "2026-11-26T14:00" in local time, for a datetime-local input. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Parse "90s" / "15m" / "2h" / "1d" like the API does; null if not a duration. */
export function parseDuration(text) {
  const m = /^([1-9][0-9]{0,9})([smhd])$/.exec(String(text).trim());
  if (!m) return null;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2]];
}
