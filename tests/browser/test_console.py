"""The duty-officer console in headless Chromium, against real nodes and gateways on 127.0.0.1.

The officers are int-org (sender, "A"), fr-police ("B", action tier), ke-fiu (inform tier) and
auditors. Every console must log no error, break no CSP rule and leave browser storage empty
(checked by the ``consoles`` fixture when the test ends).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.async_api import Page, expect

from node.console_routes import CONTENT_SECURITY_POLICY, load_assets
from tests.support.agencies import Agencies, alert_body

HEADLINE = "Armed suspects heading north on the A1"
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__notifications = [];
  window.Notification = class extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notifications.push(title);
    }
  };
})();
"""


async def post(fed: Agencies, node: str, body: dict[str, Any]) -> str:
    status, answer = await fed.call(node, "POST", "/v1/alerts", json=body)
    assert status == 201, answer
    return str(answer["message_id"])


def one_tier(*recipients: str, sections: tuple[str, ...] = ("summary",)) -> list[dict[str, Any]]:
    return [{"name": "action", "recipients": list(recipients), "sections": list(sections)}]


async def earlier_traffic(fed: Agencies) -> None:
    """What fr-police received before the FLASH: precedence to sort and an update to thread."""
    bulletin = {"headline": "Weekly cross-border liaison bulletin", "summary": "Contact list refreshed; no action needed."}
    await post(fed, "ke-fiu", alert_body(priority="ROUTINE", tlp="TLP:GREEN", tiers=one_tier("fr-police"), sections=bulletin))
    lorry = {"headline": "Stolen refrigerated lorry crossing at Menton", "summary": "White lorry, Kenyan plates.", "details": "Driver may be armed."}
    tiers = one_tier("fr-police", "int-org", sections=("summary", "details"))
    await post(fed, "ke-police", alert_body(priority="IMMEDIATE", tlp="TLP:AMBER+STRICT", tiers=tiers, sections=lorry))
    missing = {"headline": "Missing child: Lea M., 9, last seen Geneva", "summary": "Photo follows."}
    first = await post(fed, "int-org", alert_body(priority="PRIORITY", tiers=one_tier("fr-police"), sections=missing))
    seen = {"headline": "Update: Lea M. seen in Annecy", "summary": "Sighting at the station."}
    await post(fed, "int-org", alert_body(kind="update", references=[first], priority="PRIORITY", tiers=one_tier("fr-police"), sections=seen))


async def fill_in_the_flash_alert(page: Page) -> None:
    """Officer A's form: CAP fields, FLASH, three tiers with an escalation, all through the UI."""
    await page.get_by_role("link", name="Compose").click()
    await page.get_by_label("FLASH").check()
    await page.get_by_label("Event").fill("Armed robbery suspects crossing border")
    await page.get_by_label("Urgency").select_option("Immediate")
    await page.get_by_label("Severity").select_option("Severe")
    await page.get_by_label("Certainty").select_option("Likely")
    await page.get_by_label("Headline (every tier sees it)").fill(HEADLINE)
    await page.get_by_role("textbox", name="Summary").fill("Three suspects in a grey van, last seen at the Lyon toll plaza at 02:40.")
    await page.get_by_label("Details (optional)").fill("Plate FR-123-AB. Suspects are armed; one is injured.")
    await page.get_by_label("Instructions (optional)").fill("Stop and hold. Do not approach alone; call the int-org duty desk.")
    await page.get_by_label("Attachments (optional)").set_input_files(files=[{"name": "plate.txt", "mimeType": "text/plain", "buffer": b"FR-123-AB"}])
    await expect(page.locator(".file-list")).to_contain_text("plate.txt (text/plain, 9 bytes)")
    await page.locator("#tier-0-r-fr-police").check()
    await page.locator("#tier-0-s-attachments").check()
    await page.locator("#tier-0-ack").fill("15m")
    await page.get_by_role("button", name="Add tier").click()
    await page.locator("#tier-1-r-ke-fiu").check()
    await page.get_by_role("button", name="Add tier").click()
    await page.locator("#tier-2-r-ke-police").check()
    await page.locator("#tier-2-s-details").check()
    await page.locator("#tier-0-escalate").select_option("escalation")
    await page.locator("#tier-0-after").fill("10m")


async def test_a_flash_alert_from_compose_to_acknowledged(fed: Agencies, consoles: Callable[..., Any], screenshot: Callable[..., Any]) -> None:
    await earlier_traffic(fed)
    await fed.settle()

    b = await consoles("fr-police")
    await b.context.grant_permissions(["notifications"])
    await b.page.add_init_script(NOTIFICATION_SPY)
    await b.page.reload()
    await expect(b.page.locator("#live-status")).to_have_attribute("data-status", "live")
    await b.page.get_by_role("button", name="Alert sound: off").click()
    await expect(b.page.locator("#alerts-toggle")).to_have_text("Alert sound: on")
    await expect(b.page.locator("#alerts-toggle")).to_have_attribute("aria-pressed", "true")
    rows = b.page.locator("#inbox-list .alert-row")
    await expect(rows).to_have_count(4)
    await expect(b.page.locator(".replies .alert-row")).to_contain_text("UPDATE")
    await expect(b.page.locator("#inbox-list > li > .alert-row").first).to_contain_text("IMMEDIATE")
    fiu = await consoles("ke-fiu")

    # 1. A composes a tiered FLASH alert with an escalation tier and reads the preview.
    a = await consoles("int-org")
    await fill_in_the_flash_alert(a.page)
    preview = a.page.locator("#preview-list")
    await expect(preview).to_contain_text("fr-police (tier action) will see: headline, summary, details, instructions, attachments.")
    await expect(preview).to_contain_text("ke-fiu (tier inform) will see: headline, summary. Withheld from them: details, instructions, attachments.")
    await expect(preview).to_contain_text("ke-police (tier escalation) will receive headline, summary, details only if action has not accepted within 10m.")
    await expect(a.page.locator("#tier-2-held")).to_contain_text("released only if tier action has not accepted within 10m")
    await expect(a.page.locator("#send-alert")).to_have_text(re.compile("Send FLASH alert"))
    await a.page.evaluate("window.scrollTo(0, 0)")
    await screenshot(a.page, "compose", full_page=True)

    # 2. A sends; B's open console shows it live, without a reload, and B acknowledges.
    await a.page.locator("#send-alert").click()
    await expect(a.page).to_have_url(re.compile(r"#/sent/[0-9a-f]{32}$"))
    message_id = a.page.url.rsplit("/", 1)[1]
    await fed.settle()
    flash = b.page.locator("#inbox-list .alert-row", has_text=HEADLINE)
    await expect(flash).to_be_visible()
    await expect(b.page.locator("#inbox-list > li > .alert-row").first).to_contain_text("FLASH")
    await expect(flash).to_contain_text("awaiting ack")
    assert await b.page.evaluate("window.__notifications") == ["FLASH alert from int-org"]
    await expect(b.page.locator("#announce-urgent")).to_contain_text(f"New FLASH alert from int-org: {HEADLINE}")
    await flash.click()
    detail = b.page.locator("#inbox-detail")
    await expect(detail.locator("#detail-title")).to_have_text(HEADLINE)
    for section in ("summary", "details", "instructions"):
        await expect(detail.locator(f"[data-section={section}]")).to_be_visible()
    await expect(detail.locator(".visible-line")).to_have_text("visible to your agency: headline, summary, details, instructions, attachments")
    await expect(detail.locator("[data-section=attachments]")).to_contain_text("plate.txt (text/plain, 9 bytes)")
    await expect(detail.locator("#withheld")).to_have_count(0)
    await screenshot(b.page, "inbox")

    await expect(fiu.page.locator("#inbox-list .alert-row", has_text=HEADLINE)).to_be_visible()
    await fiu.page.locator("#inbox-list .alert-row", has_text=HEADLINE).click()
    await expect(fiu.page.locator("#withheld")).to_contain_text("withheld: details, instructions, attachments")
    await expect(fiu.page.locator("[data-section=summary]")).to_contain_text("Three suspects")
    await expect(fiu.page.locator("[data-section=details]")).to_have_count(0)

    # 3. A's delivery board: delivered, with the escalation counting down ...
    recipient = a.page.locator("#recipients li[data-member=fr-police]")
    await expect(recipient.locator(".recipient-head")).to_contain_text("delivered")
    await expect(a.page.locator("#recipients li[data-member=ke-police]")).to_contain_text("held")
    await expect(a.page.locator(".tiers-table")).to_contain_text(re.compile(r"releases tier escalation in \d+m"))
    await expect(recipient.locator(".timeline")).to_contain_text("gw-eu")

    # ... B acknowledges from the keyboard; typing in the comment does not trigger shortcuts ...
    comment = b.page.get_by_label("Comment (optional)")
    await comment.press_sequentially("all units alerted, roadblock at A1 exit 12")
    await expect(b.page.locator(".ack-status")).to_have_count(0)
    await comment.press("Escape")
    await b.page.keyboard.press("a")
    await expect(b.page.locator(".ack-status")).to_contain_text("Accepted")
    await expect(b.page.locator(".ack-history")).to_contain_text("accepted by officer-fr-police")
    await expect(flash).to_contain_text("accepted")
    await fed.settle()

    # ... and the board turns to acknowledged, live, with a verified ack receipt.
    await expect(recipient.locator(".recipient-head")).to_contain_text("acknowledged")
    await expect(recipient.locator(".ack-line")).to_contain_text("accepted")
    await expect(recipient.locator(".ack-line")).to_contain_text("all units alerted")
    await expect(recipient.locator(".ack-line .verified")).to_be_visible()
    await expect(a.page.locator(".tiers-table")).to_contain_text("not needed: accepted in time")
    await expect(a.page.locator(".verified-line")).to_contain_text("Every receipt shown verified")
    await a.page.evaluate("window.scrollTo(0, 0)")
    await screenshot(a.page, "delivery-board", full_page=True)

    # The evidence bundle: downloaded, or a clear message if this node does not offer it.
    a.expect_error(404, f"/v1/alerts/{message_id}/evidence")
    await a.page.get_by_role("button", name="Download evidence bundle").click()
    await expect(a.page.locator("#evidence-status")).to_contain_text(re.compile("Evidence bundle (downloaded|not available)"))


async def test_an_auditor_sees_delivery_but_cannot_send_or_ack(fed: Agencies, consoles: Callable[..., Any]) -> None:
    await post(fed, "int-org", alert_body())
    await fed.settle()
    auditor = await consoles("int-org", "auditor")
    page = auditor.page
    await expect(page.locator("#recipients li[data-member=fr-police]")).to_contain_text("delivered")
    await expect(page.get_by_role("link", name="Compose")).to_have_count(0)
    await expect(page.get_by_role("link", name="Inbox")).to_have_count(0)
    await expect(page.get_by_role("link", name="Audit")).to_be_visible()
    await expect(page.get_by_role("link", name="Send update…")).to_have_count(0)
    await page.goto(auditor.base + "/#/compose")
    await expect(page).to_have_url(re.compile("#/sent$"))
    await expect(page.locator("#send-alert, #compose-form, #ack-accept")).to_have_count(0)

    # The server refuses anyway: the auditor's own session and CSRF token, a direct API call.
    auditor.expect_error(403, "/v1/alerts")
    auditor.expect_error(403, "/v1/inbox")
    answers = await page.evaluate(
        """async (body) => {
            const me = await (await fetch('/v1/session')).json();
            const send = await fetch('/v1/alerts', {method: 'POST', body: JSON.stringify(body),
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token}});
            const inbox = await fetch('/v1/inbox');
            return [me.role, send.status, (await send.json()).error.code, inbox.status];
        }""",
        alert_body(),
    )
    assert answers == ["auditor", 403, "E_FORBIDDEN", 403]
    await page.get_by_role("link", name="Audit").click()
    await expect(page.locator("#audit-body")).to_contain_text("officer-int-org")


async def test_field_errors_from_the_api_appear_next_to_their_fields(fed: Agencies, consoles: Callable[..., Any]) -> None:
    a = await consoles("int-org")
    a.expect_error(422, "/v1/alerts")
    page = a.page
    await fill_in_the_flash_alert(page)
    await page.locator("#tier-0-ack").fill("soon")
    await page.locator("#expiry-ttl").fill("45d")
    await page.locator("#send-alert").click()

    ack_error = page.locator("#tier-0-ack-error")
    await expect(ack_error).to_be_visible()
    await expect(ack_error).to_contain_text("duration")
    await expect(page.locator("#tier-0-ack")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#tier-0-ack")).to_have_attribute("aria-describedby", re.compile("tier-0-ack-error"))
    await expect(page.locator("#expires-error")).to_contain_text("30d")
    summary = page.locator("#error-summary")
    await expect(summary).to_be_focused()
    await expect(summary).to_contain_text("Ack deadline (optional)")
    await expect(page.locator(".send-status")).to_contain_text("Not sent")

    # The summary links to the field; fixing both sends the alert.
    await summary.get_by_role("button", name="Ack deadline (optional)").click()
    await expect(page.locator("#tier-0-ack")).to_be_focused()
    await page.locator("#tier-0-ack").fill("15m")
    await page.get_by_label("Expires at", exact=True).check()  # the absolute form, prefilled 6 h ahead on the node's clock
    await expect(page.locator("#preview-body")).to_contain_text(re.compile(r"expires at .* \(in [56]h"))
    await page.locator("#send-alert").click()
    await expect(page).to_have_url(re.compile(r"#/sent/[0-9a-f]{32}$"))
    await expect(page.locator(".banner-ok")).to_contain_text("Sent.")


async def test_the_console_is_served_with_a_strict_policy(fed: Agencies) -> None:
    assert fed.session is not None
    base = fed.url("int-org")
    async with fed.session.get(base + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert resp.headers["X-Content-Type-Options"] == "nosniff" and resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
        html = await resp.text()
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle\s*=|\son[a-z]+\s*=", html), "inline script, style or handler in index.html"
    async with fed.session.get(base + "/console/app.js") as resp:
        assert resp.status == 200 and resp.content_type == "text/javascript" and resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        etag = resp.headers["ETag"]
    async with fed.session.get(base + "/console/app.js", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
    for path in ("/console/nope.js", "/console/%2e%2e/api.py", "/console/../console_routes.py", "/console/index.html"):
        async with fed.session.get(base + path) as resp:
            assert resp.status == 404, path
            assert (await resp.json())["error"]["code"] == "E_NOT_FOUND"


def test_the_console_code_has_no_unsafe_sinks_and_no_storage() -> None:
    """No HTML from strings, no eval, no browser storage, no inline styles, no third-party URL, in any asset."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*['\"`]|"
        r"localStorage|sessionStorage|indexedDB|document\.cookie|\.style\.|setAttribute\(\s*['\"]style|https?://(?!www\.w3\.org/2000/svg)"
    )
    assets = load_assets()
    assert {"index.html", "app.js", "styles.css", "icon.svg"} <= set(assets)
    for name, asset in assets.items():
        if name.endswith(".js"):
            hits = forbidden.findall(asset.body.decode())
            assert not hits, f"{name}: {hits}"


async def fill_in_cap(page: Page, event: str, urgency: str, severity: str, certainty: str, summary: str) -> None:
    await page.get_by_label("Event").fill(event)
    await page.get_by_label("Urgency").select_option(urgency)
    await page.get_by_label("Severity").select_option(severity)
    await page.get_by_label("Certainty").select_option(certainty)
    await page.get_by_role("textbox", name="Summary").fill(summary)


async def test_updates_and_cancels_thread_under_the_original_and_a_rejection_reaches_the_sender(fed: Agencies, consoles: Callable[..., Any]) -> None:
    original = await post(fed, "int-org", alert_body())
    await fed.settle()
    b = await consoles("fr-police")
    a = await consoles("int-org", fragment=f"#/sent/{original}")

    # The sender starts an update from the delivery board: kind, reference, precedence and tiers are prefilled.
    await a.page.get_by_role("link", name="Send update…").click()
    await expect(a.page.locator("#kind-update")).to_be_checked()
    await expect(a.page.locator("#references")).to_have_value(original)
    await expect(a.page.locator("#headline")).to_have_value("Suspects heading north on the A1")
    await expect(a.page.locator("#tier-0-r-fr-police")).to_be_checked()
    await fill_in_cap(a.page, "Suspects changed direction", "Immediate", "Severe", "Likely", "The van is now heading east on the A40.")
    await a.page.locator("#send-alert").click()
    await expect(a.page).to_have_url(re.compile(r"#/sent/[0-9a-f]{32}$"))
    await fed.settle()
    await expect(b.page.locator(".replies .alert-row")).to_have_count(1)
    await expect(b.page.locator(".replies .alert-row")).to_contain_text("UPDATE")

    await a.page.goto(f"{a.base}/#/sent/{original}")
    await a.page.get_by_role("link", name="Cancel alert…").click()
    await expect(a.page.locator("#headline")).to_have_value("CANCELLED: Suspects heading north on the A1")
    await fill_in_cap(a.page, "Suspects arrested", "Past", "Minor", "Observed", "All three suspects were arrested at 04:10.")
    await a.page.locator("#send-alert").click()
    await expect(a.page).to_have_url(re.compile(r"#/sent/[0-9a-f]{32}$"))
    await fed.settle()

    # B sees both under the original, which is marked cancelled.
    await expect(b.page.locator(".replies .alert-row")).to_have_count(2)
    head = b.page.locator("#inbox-list > li > .alert-row")
    await expect(head).to_have_count(1)
    await expect(head).to_contain_text("cancelled by sender")
    await head.click()
    await expect(b.page.locator(".banner-cancel")).to_contain_text("The sender cancelled this alert.")
    await b.page.get_by_role("button", name="Open the update").click()
    await expect(b.page.locator("#detail-title")).to_have_text("Suspects heading north on the A1")
    await expect(b.page.locator("[data-section=summary]")).to_contain_text("heading east on the A40")

    # B rejects the update from the keyboard, with a reason.
    await b.page.keyboard.press("r")
    await expect(b.page.locator("#ack-reason")).to_be_focused()
    await b.page.locator("#ack-reason").fill("Not our jurisdiction any more")
    await b.page.get_by_role("button", name="Send rejection").click()
    await expect(b.page.locator(".ack-status")).to_contain_text("Rejected")
    await fed.settle()
    await a.page.get_by_role("link", name="Sent").click()
    await a.page.locator("#sent-list .alert-row", has_text="UPDATE").click()
    fr = a.page.locator("#recipients li[data-member=fr-police] .ack-line")
    await expect(fr).to_contain_text("rejected")
    await expect(fr).to_contain_text("reason: Not our jurisdiction any more")
    await a.page.locator(f"#sent-list .alert-row[data-id='{original}']").click()
    await expect(a.page.locator("#sent-detail .status-cancelled")).to_be_visible()

    # Signing out ends the session; the page reloads to the sign-in form with nothing kept.
    await b.page.get_by_role("button", name="Sign out").click()
    await expect(b.page.get_by_label("Username")).to_be_visible()
    assert await b.page.evaluate("fetch('/v1/inbox').then((r) => r.status)") == 401
    b.expect_error(401, "/v1/inbox")


async def test_the_console_logic_orders_threads_hops_and_error_paths(fed: Agencies, browser: Any) -> None:
    """The pure parts of the console, run in the browser as the console loads them."""
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(fed.url("int-org") + "/")
    await expect(page.get_by_label("Username")).to_be_visible()
    result = await page.evaluate(
        """async () => {
            const {threads} = await import('/console/inbox.js');
            const {travelOrder} = await import('/console/board.js');
            const {locate} = await import('/console/fielderrors.js');
            const {span, relative, parseDuration} = await import('/console/clock.js');
            const item = (id, priority, received_at, kind = 'alert', refs = []) => ({message_id: id, priority, received_at, created: received_at, kind, refs});
            const order = threads([
                item('r', 'ROUTINE', 50), item('p', 'PRIORITY', 40), item('u', 'FLASH', 60, 'update', ['p']),
                item('i', 'IMMEDIATE', 30), item('f', 'FLASH', 10),
            ]).map((t) => [t.item.message_id, ...t.replies.map((r) => r.message_id)].join('+'));
            const hops = travelOrder([
                {hop: 'ke-fiu', event: 'accepted', time: 5}, {hop: 'gw-af', event: 'delivered', time: 5},
                {hop: 'int-org', event: 'relayed', time: 5}, {hop: 'int-org', event: 'accepted', time: 5},
                {hop: 'gw-eu', event: 'accepted', time: 1},
            ], ['int-org', 'gw-eu', 'gw-af', 'ke-fiu']).map((e) => `${e.hop}:${e.event}`);
            const form = document.createElement('form');
            for (const path of ['tiers', 'tiers[0]', 'tiers[0].recipients', 'expires', 'sections.attachments']) {
                const div = document.createElement('div');
                div.dataset.path = path;
                form.append(div);
            }
            const body = {tiers: [{recipients: ['fr-police', 'ke-fiu']}], sections: {attachments: [{name: 'a.txt'}, {name: 'plate.jpg'}]}};
            const where = (path) => {
                const found = locate(form, path, body);
                return found ? `${found.container.dataset.path}|${found.prefix}` : null;
            };
            return {
                order, hops,
                paths: ['tiers[0].recipients[1]', 'expires.ttl', 'sections.attachments[1].data', 'tiers[0].name', 'priority', '$'].map(where),
                times: [span(90_000), span(3_600_000 * 26), relative(10_000, 0), relative(0, 7_200_000), parseDuration('15m'), parseDuration('15 m')],
            };
        }"""
    )
    assert result["order"] == ["p+u", "f", "i", "r"], "a thread ranks by its most urgent message, then newest activity"
    assert result["hops"] == ["gw-eu:accepted", "int-org:accepted", "int-org:relayed", "gw-af:delivered", "ke-fiu:accepted"]
    assert result["paths"] == ["tiers[0].recipients|ke-fiu: ", "expires|", "sections.attachments|plate.jpg: ", "tiers[0]|", None, None]
    assert result["times"] == ["1m 30s", "1d 2h", "in 10s", "2h ago", 900_000, None]
    assert errors == []
    await context.close()
