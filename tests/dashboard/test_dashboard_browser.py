"""The dashboard in headless Chromium on a running ``vstage demo`` (real models): create a
persona, see a bad value refused beside its field, fix it, save, talk to it in the studio
without a restart; pause, clear and skip act on the live show; the audit view lists a refused
message. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.dashboard.conftest import TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.models]


def post_chat(demo: str, text: str, *, user: str, persona: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{demo}/api/chat", data=json.dumps({"text": text, "user": user,
                                             "persona": persona}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def dashboard(demo, chromium):
    page = chromium.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{demo}/dashboard?token={TOKEN}")
    page.wait_for_selector(".persona-item[data-id=mika]", timeout=15_000)
    yield page
    assert not errors, errors
    page.close()


def test_create_a_persona_fix_a_bad_value_and_talk_to_it_without_a_restart(
        demo, chromium, dashboard, artifacts):
    page = dashboard
    page.click("#new-persona")
    page.fill("#f-id", "nova")
    page.fill("#f-name", "Nova")
    page.fill("#f-personality", "You are Nova, a calm night-sky streamer. Answer in one short "
                                "friendly sentence.")
    page.fill("#f-greeting", "")
    page.click("details[data-group=llm] > summary")
    page.fill("#f-llm__temperature", "7")
    page.fill("#f-llm__max_tokens", "40")
    page.click("#save")
    error = page.locator("#f-llm__temperature-err")
    error.wait_for(state="visible", timeout=10_000)
    assert error.inner_text() == "Input should be less than or equal to 2"
    assert page.get_attribute("#f-llm__temperature", "aria-invalid") == "true"
    assert page.evaluate("() => document.activeElement.id") == "f-llm__temperature"
    page.screenshot(path=str(artifacts / "dashboard-validation.png"))
    assert not (demo.config / "personas" / "nova.yaml").exists()  # nothing written

    page.fill("#f-llm__temperature", "0.6")
    page.click("#save")
    page.wait_for_function(
        "() => document.querySelector('#editor-status').textContent.includes('on the show')",
        timeout=120_000)
    assert error.inner_text() == ""
    assert "temperature: 0.6" in (demo.config / "personas" / "nova.yaml").read_text()
    assert page.locator(".persona-item[data-id=nova]").inner_text().startswith("Nova")
    page.screenshot(path=str(artifacts / "dashboard-saved.png"))

    studio = chromium.new_page(viewport={"width": 1366, "height": 768})
    studio.goto(f"{demo}/studio?token={TOKEN}")
    studio.wait_for_selector("#status.online", timeout=15_000)
    studio.select_option("#persona", "nova")
    studio.fill("#user", "stargazer")
    studio.fill("#text", "Hi Nova, what is your favourite star?")
    studio.click("#send")
    studio.wait_for_function(
        "() => [...document.querySelectorAll('#chat-log li.persona')]"
        ".some(li => li.textContent.startsWith('Nova') && li.textContent.length > 8)",
        timeout=150_000)
    assert studio.inner_text("#form-error") == ""
    studio.screenshot(path=str(artifacts / "dashboard-studio-nova.png"))
    studio.close()


def test_pause_clear_and_skip_act_on_the_live_show(demo, dashboard, artifacts):
    page = dashboard
    page.click("#tab-live")
    card = page.locator(".live-card[data-persona=mika]")
    card.wait_for(timeout=10_000)
    card.locator("button.pause").click()
    page.wait_for_function(
        "() => document.querySelector('.live-card[data-persona=mika]').dataset.paused === 'true'",
        timeout=10_000)
    waiting = [post_chat(demo, f"Question number {n} for Mika about games", user=f"q{n}",
                         persona="mika") for n in (1, 2)]
    assert [w[0] for w in waiting] == [202, 202]
    card.locator(".queue li[data-trace]").nth(1).wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts / "dashboard-live-paused.png"))
    card.locator("button.clear").click()
    card.locator(".queue li.empty").wait_for(timeout=10_000)
    refused = card.locator(".recent li.st-refused")
    refused.nth(1).wait_for(timeout=10_000)
    texts = refused.all_inner_texts()
    assert all("cleared by a moderator" in t for t in texts[:2])
    assert {"q1", "q2"} <= {t.split()[1].rstrip(":") for t in texts}

    card.locator("button.resume").click()
    status, body = post_chat(demo, "Mika, tell me a long story about your favourite game",
                             user="storyfan", persona="mika")
    assert status == 202
    page.wait_for_function(
        "() => document.querySelector('.live-card[data-persona=mika] .state')"
        ".textContent.includes('on stage')", timeout=150_000)
    card.locator("button.skip").click()
    card.locator(".recent li.st-interrupted").first.wait_for(timeout=20_000)
    assert "storyfan" in card.locator(".recent li.st-interrupted").first.inner_text()
    page.screenshot(path=str(artifacts / "dashboard-live.png"))


def test_the_audit_view_lists_a_refused_message(demo, dashboard, artifacts):
    page = dashboard
    status, body = post_chat(demo, "free followers at spam-followers.example.com",
                             user="spammer", persona="mika")
    assert status == 422 and "link" in body["error"]
    page.click("#tab-audit")
    page.fill("#audit-text", "spam-followers")
    page.select_option("#audit-decision", "reject")
    page.click("#audit-form button[type=submit]")
    # The log is written every half second and the view refreshes itself every 3 s
    # (replacing its rows): read the spammer's row in one step once it is there.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#audit-table tbody tr')]"
        ".some((r) => r.textContent.includes('spammer'))", timeout=15_000)
    cells = page.evaluate(
        "() => [...[...document.querySelectorAll('#audit-table tbody tr')]"
        ".find((r) => r.textContent.includes('spammer')).cells].map((c) => c.textContent)")
    assert cells[1] == "mika" and cells[3] == "reject" and cells[4] == "spammer"
    assert cells[5] == "links"
    page.screenshot(path=str(artifacts / "dashboard-audit.png"))
    page.focus("#tab-audit")
    page.keyboard.press("ArrowRight")  # the tabs follow the keyboard
    assert page.evaluate("() => document.activeElement.id") == "tab-health"
    page.locator("#health-adapters li").first.wait_for(timeout=10_000)
    assert "twitch: off" in page.inner_text("#health-adapters")
    page.screenshot(path=str(artifacts / "dashboard-health.png"))
