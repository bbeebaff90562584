// Attention for FLASH and IMMEDIATE alerts: an aria-live announcement always; a sound and a
// desktop notification once the officer switched them on (browsers allow both only after a
// user gesture, so permission is asked from that button, never on page load).
// The notification names the precedence, sender and TLP label only: the headline could be
// TLP:RED, and operating-system notification centres keep a history.

let audio = null;
let enabled = false;

export function alertsEnabled() {
  return enabled;
}

/** Switch sound and notifications on; must run inside a click handler. */
export async function enableAlerts() {
  audio ??= new AudioContext();
  if (audio.state === 'suspended') await audio.resume();
  if ('Notification' in window && Notification.permission === 'default') {
    try {
      await Notification.requestPermission();
    } catch {
      /* the officer still gets the sound and the on-page alert */
    }
  }
  enabled = true;
  return notificationState();
}

export function disableAlerts() {
  enabled = false;
}

function notificationState() {
  return 'Notification' in window ? Notification.permission : 'unsupported';
}

/** Two-tone pattern: three fast pulses for FLASH, two for IMMEDIATE. */
function chime(priority) {
  if (!audio) return;
  const pulses = priority === 'FLASH' ? 3 : 2;
  const start = audio.currentTime + 0.02;
  for (let i = 0; i < pulses; i++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = 'square';
    osc.frequency.value = i % 2 ? 660 : 880;
    const t = start + i * 0.22;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.12, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.2);
  }
}

const politeRegion = () => document.getElementById('announce-polite');
const urgentRegion = () => document.getElementById('announce-urgent');

/** Say something to screen-reader users (and only them; the page shows it anyway). */
export function announce(text, { urgent = false } = {}) {
  const region = urgent ? urgentRegion() : politeRegion();
  if (!region) return;
  region.textContent = '';
  // A fresh text node in a later task makes screen readers read repeated messages again.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** A new urgent inbox item arrived: sound and desktop notification if enabled. */
export function urgentArrived(item, onOpen) {
  if (!enabled) return;
  chime(item.priority);
  if (notificationState() !== 'granted') return;
  const note = new Notification(`${item.priority} alert from ${item.origin}`, {
    body: `${item.tlp} · open the Heliograph console to read and acknowledge it.`,
    tag: item.message_id,
    requireInteraction: item.priority === 'FLASH',
  });
  note.addEventListener('click', () => {
    window.focus();
    onOpen(item.message_id);
    note.close();
  });
}
