// "Who will see what": plain sentences built from the exact request the console is about to
// send, so the preview cannot disagree with what the node seals. Pure: no DOM, no clock.

const ORDER = ['headline', 'summary', 'details', 'instructions', 'attachments'];

function list(items) {
  return items.length ? items.join(', ') : 'nothing';
}

/**
 * Describe request (a POST /v1/alerts body).
 * Returns {recipients: [{member, tier, held, text}], notes: [string], warnings: [string]}.
 * dropped: sections a tier ticked that are empty (the console leaves them out of the request).
 */
export function describe(request, { dropped = [] } = {}) {
  const present = new Set(['headline', ...Object.keys(request.sections ?? {}).filter((s) => s !== 'headline')]);
  const heldBy = new Map();
  for (const tier of request.tiers ?? []) {
    const esc = tier.escalate_if_unacked;
    if (esc?.tier) heldBy.set(esc.tier, { watcher: tier.name, after: esc.after });
  }
  const recipients = [];
  const warnings = [];
  const seen = new Set(['headline']);
  for (const tier of request.tiers ?? []) {
    const sees = ORDER.filter((s) => s === 'headline' || tier.sections.includes(s));
    for (const s of sees) seen.add(s);
    const withheld = ORDER.filter((s) => present.has(s) && !sees.includes(s));
    const held = heldBy.get(tier.name);
    const esc = tier.escalate_if_unacked;
    const tail = [];
    if (withheld.length) tail.push(`Withheld from them: ${list(withheld)}.`);
    if (tier.ack_deadline) tail.push(held ? `Asked to acknowledge within ${tier.ack_deadline} of release.` : `Asked to acknowledge within ${tier.ack_deadline}.`);
    if (esc?.tier) tail.push(`If nobody in tier ${tier.name} accepts within ${esc.after || '?'}, tier ${esc.tier} is released.`);
    for (const member of tier.recipients) {
      const head = held
        ? `${member} (tier ${tier.name}) will receive ${list(sees)} only if ${held.watcher} has not accepted within ${held.after || '?'}.`
        : `${member} (tier ${tier.name}) will see: ${list(sees)}.`;
      recipients.push({ member, tier: tier.name, held: Boolean(held), text: [head, ...tail].join(' ') });
    }
  }
  const anyone = (request.tiers ?? []).some((t) => t.recipients.length);
  for (const tier of request.tiers ?? []) if (anyone && !tier.recipients.length) warnings.push(`Tier ${tier.name || '(unnamed)'} has no recipients yet.`);
  const unseen = ORDER.filter((s) => present.has(s) && !seen.has(s));
  if (unseen.length) warnings.push(`Nobody will see: ${list(unseen)}. Tick it in a tier or remove it.`);
  const emptyByTier = new Map();
  for (const { tier, section } of dropped) emptyByTier.set(tier, [...(emptyByTier.get(tier) ?? []), section]);
  const notes = [...emptyByTier].map(([tier, sections]) => `Tier ${tier} may open ${list(sections)}, but ${sections.length === 1 ? 'it is' : 'they are'} empty, so nothing is sent for ${sections.length === 1 ? 'it' : 'them'}.`);
  if (!anyone) warnings.push('No recipients yet: pick at least one agency in a tier.');
  return { recipients, notes, warnings };
}
