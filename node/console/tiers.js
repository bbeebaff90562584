// The tier builder: each tier names its recipient agencies (from the roster, via
// GET /v1/federation), the sections they may open, an optional ack deadline and an optional
// escalation ("if not accepted within D, release tier T"). State lives in plain objects;
// the DOM is rebuilt only when tiers are added or removed, so typing never loses focus.

import { fill, h, slug } from './dom.js';
import { icon } from './icons.js';

const TIER_SECTIONS = ['summary', 'details', 'instructions', 'attachments'];
const DEFAULT_NAMES = ['action', 'inform', 'escalation'];
const MAX_TIERS = 8;

export class TierBuilder {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.tiers = [];
    this.members = []; // [{id, display_name, home_gateway}]
    this.list = h('ol', { class: 'tier-list' });
    this.addButton = h('button', { type: 'button', class: 'btn', id: 'add-tier', on: { click: () => this.add() } }, icon('plus'), 'Add tier');
    this.el = h(
      'section',
      { class: 'tiers', 'aria-labelledby': 'tiers-title', dataset: { path: 'tiers' } },
      h('h2', { id: 'tiers-title', text: 'Recipients and tiers' }),
      h('p', { class: 'hint', text: 'Each tier is a group of agencies that may open the same sections. An escalation tier is held back and released only if the watching tier has not accepted in time.' }),
      h('p', { class: 'field-error', id: 'tiers-error', hidden: true }),
      this.list,
      this.addButton,
    );
  }

  setMembers(members) {
    this.members = members;
    this.render();
  }

  add(preset = {}) {
    if (this.tiers.length >= MAX_TIERS) return;
    this.push(preset);
    this.render();
    this.list.querySelector(`#tier-${this.tiers.length - 1}-name`)?.focus();
    this.onChange();
  }

  push(preset) {
    const used = new Set(this.tiers.map((t) => t.name));
    const name = preset.name ?? DEFAULT_NAMES.find((n) => !used.has(n)) ?? `tier-${this.tiers.length + 1}`;
    this.tiers.push({
      name,
      recipients: new Set(preset.recipients ?? []),
      sections: new Set(preset.sections ?? (this.tiers.length ? ['summary'] : ['summary', 'details', 'instructions'])),
      ackDeadline: preset.ackDeadline ?? '',
      escalateTo: preset.escalateTo ?? '',
      escalateAfter: preset.escalateAfter ?? '',
    });
  }

  remove(index) {
    const [gone] = this.tiers.splice(index, 1);
    for (const t of this.tiers) if (t.escalateTo === gone.name) t.escalateTo = '';
    this.render();
    (this.list.querySelector(`#tier-${Math.max(0, index - 1)}-name`) ?? this.addButton).focus();
    this.onChange();
  }

  reset(presets) {
    this.tiers = [];
    for (const p of presets) this.push(p);
    this.render();
  }

  /** The tiers as the API wants them (sections limited to those with content). */
  request(presentSections) {
    return this.tiers.map((t) => {
      const tier = { name: t.name.trim(), recipients: [...t.recipients], sections: TIER_SECTIONS.filter((s) => t.sections.has(s) && presentSections.has(s)) };
      if (t.ackDeadline.trim()) tier.ack_deadline = t.ackDeadline.trim();
      if (t.escalateTo) tier.escalate_if_unacked = { tier: t.escalateTo, after: t.escalateAfter.trim() };
      return tier;
    });
  }

  /** Sections ticked in a tier that have no content (left out of the request). */
  dropped(presentSections) {
    return this.tiers.flatMap((t) => TIER_SECTIONS.filter((s) => t.sections.has(s) && !presentSections.has(s)).map((section) => ({ tier: t.name, section })));
  }

  takenBy(member, index) {
    const other = this.tiers.findIndex((t, i) => i !== index && t.recipients.has(member));
    return other < 0 ? null : this.tiers[other].name || `tier ${other + 1}`;
  }

  /** Keep recipient availability and escalation targets in step without rebuilding inputs. */
  sync() {
    this.tiers.forEach((tier, i) => {
      for (const box of this.list.querySelectorAll(`input[data-tier="${i}"][data-member]`)) {
        const taken = this.takenBy(box.dataset.member, i);
        box.disabled = taken !== null;
        const note = box.parentElement.querySelector('.taken');
        note.textContent = taken ? ` (in tier ${taken})` : '';
      }
      const select = this.list.querySelector(`#tier-${i}-escalate`);
      if (select) fill(select, this.targetOptions(i));
      const heldNote = this.list.querySelector(`#tier-${i}-held`);
      if (heldNote) {
        const watcher = this.tiers.find((t) => t.escalateTo && t.escalateTo === tier.name);
        heldNote.hidden = !watcher;
        heldNote.textContent = watcher ? `Held back: released only if tier ${watcher.name} has not accepted within ${watcher.escalateAfter || '…'}.` : '';
      }
    });
  }

  targetOptions(index) {
    const tier = this.tiers[index];
    const options = [h('option', { value: '', text: 'No escalation', selected: !tier.escalateTo })];
    this.tiers.forEach((t, i) => {
      if (i !== index && t.name.trim()) options.push(h('option', { value: t.name.trim(), text: `Release tier ${t.name.trim()}`, selected: tier.escalateTo === t.name.trim() }));
    });
    return options;
  }

  render() {
    fill(this.list, this.tiers.map((tier, i) => this.card(tier, i)));
    this.addButton.disabled = this.tiers.length >= MAX_TIERS;
    this.sync();
  }

  card(tier, i) {
    const id = (s) => `tier-${i}-${s}`;
    const changed = () => {
      this.sync();
      this.onChange();
    };
    const name = h('input', {
      type: 'text',
      id: id('name'),
      value: tier.name,
      maxlength: 32,
      autocomplete: 'off',
      required: true,
      on: {
        input: (e) => {
          const old = tier.name.trim();
          tier.name = e.target.value;
          for (const t of this.tiers) if (t.escalateTo === old) t.escalateTo = tier.name.trim();
          changed();
        },
      },
    });
    const recipients = this.members.length
      ? this.members.map((m) => {
          const boxId = id(`r-${slug(m.id)}`);
          return h(
            'li',
            {},
            h('input', {
              type: 'checkbox',
              id: boxId,
              checked: tier.recipients.has(m.id),
              dataset: { tier: String(i), member: m.id },
              on: {
                change: (e) => {
                  if (e.target.checked) tier.recipients.add(m.id);
                  else tier.recipients.delete(m.id);
                  changed();
                },
              },
            }),
            h('label', { for: boxId }, h('span', { class: 'member-id', text: m.id }), h('span', { class: 'member-name', text: ` ${m.display_name ?? ''}` }), h('span', { class: 'taken' })),
          );
        })
      : [h('li', { class: 'hint', text: 'The roster lists no other agency node.' })];
    const sections = [
      h('li', {}, h('input', { type: 'checkbox', id: id('s-headline'), checked: true, disabled: true }), h('label', { for: id('s-headline'), text: 'headline (always)' })),
      ...TIER_SECTIONS.map((s) =>
        h(
          'li',
          {},
          h('input', {
            type: 'checkbox',
            id: id(`s-${s}`),
            checked: tier.sections.has(s),
            on: {
              change: (e) => {
                if (e.target.checked) tier.sections.add(s);
                else tier.sections.delete(s);
                changed();
              },
            },
          }),
          h('label', { for: id(`s-${s}`), text: s }),
        ),
      ),
    ];
    const ack = h('input', { type: 'text', id: id('ack'), value: tier.ackDeadline, inputmode: 'text', autocomplete: 'off', placeholder: 'e.g. 15m', 'aria-describedby': id('ack-hint'), on: { input: (e) => ((tier.ackDeadline = e.target.value), changed()) } });
    const escalate = h('select', { id: id('escalate'), on: { change: (e) => ((tier.escalateTo = e.target.value), changed()) } });
    const after = h('input', { type: 'text', id: id('after'), value: tier.escalateAfter, autocomplete: 'off', placeholder: 'e.g. 10m', on: { input: (e) => ((tier.escalateAfter = e.target.value), changed()) } });
    const error = (s) => h('p', { class: 'field-error', id: id(`${s}-error`), hidden: true });
    return h(
      'li',
      { class: 'tier-card', dataset: { path: `tiers[${i}]` }, 'aria-labelledby': id('title') },
      h(
        'div',
        { class: 'tier-head' },
        h('h3', { id: id('title'), text: `Tier ${i + 1}` }),
        h('button', { type: 'button', class: 'btn btn-quiet btn-small', 'aria-label': `Remove tier ${i + 1}`, on: { click: () => this.remove(i) } }, icon('trash'), 'Remove'),
      ),
      error('tier'),
      h('p', { class: 'held-note', id: id('held'), hidden: true }),
      h('div', { class: 'field', dataset: { path: `tiers[${i}].name` } }, h('label', { for: id('name'), text: 'Tier name' }), name, error('name')),
      h(
        'fieldset',
        { class: 'checks', dataset: { path: `tiers[${i}].recipients` } },
        h('legend', { text: 'Recipient agencies' }),
        h('ul', { class: 'check-list' }, recipients),
        error('recipients'),
      ),
      h(
        'fieldset',
        { class: 'checks', dataset: { path: `tiers[${i}].sections` } },
        h('legend', { text: 'Sections this tier can open' }),
        h('ul', { class: 'check-list inline' }, sections),
        error('sections'),
      ),
      h(
        'div',
        { class: 'tier-row' },
        h(
          'div',
          { class: 'field', dataset: { path: `tiers[${i}].ack_deadline` } },
          h('label', { for: id('ack'), text: 'Ack deadline (optional)' }),
          h('p', { class: 'hint', id: id('ack-hint'), text: 'A duration such as 15m, or empty.' }),
          ack,
          error('ack'),
        ),
        h(
          'fieldset',
          { class: 'escalation', dataset: { path: `tiers[${i}].escalate_if_unacked` } },
          h('legend', { text: 'If not accepted in time' }),
          h(
            'div',
            { class: 'tier-row' },
            h('div', { class: 'field', dataset: { path: `tiers[${i}].escalate_if_unacked.tier` } }, h('label', { for: id('escalate'), text: 'Escalate' }), escalate, error('escalate')),
            h('div', { class: 'field', dataset: { path: `tiers[${i}].escalate_if_unacked.after` } }, h('label', { for: id('after'), text: 'after' }), after, error('after')),
          ),
          error('escalation'),
        ),
      ),
    );
  }
}
