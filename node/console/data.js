// The console's state, in memory only: one store per API resource, refreshed on SSE events.

import { api } from './api.js';
import { syncServerTime } from './clock.js';
import { Store, StoreMap } from './store.js';

export const federation = new Store(async () => {
  const body = await api('GET', '/v1/federation');
  syncServerTime(body.now);
  return body;
});
export const inbox = new Store(async () => (await api('GET', '/v1/inbox')).inbox);
export const inboxItems = new StoreMap((id) => api('GET', `/v1/inbox/${id}`));
export const sent = new Store(async () => (await api('GET', '/v1/alerts')).alerts);
export const sentItems = new StoreMap((id) => api('GET', `/v1/alerts/${id}`));
export const audit = new Store(async () => (await api('GET', '/v1/audit')).actions);

/** An ack is final once accepted or rejected; "received" still asks for a decision. */
export function finalAck(item) {
  return (item.acks ?? []).find((a) => a.disposition === 'accepted' || a.disposition === 'rejected') ?? null;
}

export function awaitingAck(item) {
  return item.kind !== 'cancel' && !item.purged && finalAck(item) === null && !(item.superseded_by ?? []).some((s) => s.kind === 'cancel');
}
