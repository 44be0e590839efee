"""An admin edits a rule draft in chromium: a long paste is kept whole and refused by the
server with its size, and the numbers form writes into the draft being edited without undoing
what was typed there. Nothing is adopted."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import LiveServer


def test_the_numbers_form_writes_into_the_draft_being_edited(walk, live_server: LiveServer):
    admin = walk()
    page = admin.page
    admin.sign_in(live_server.world.admin)
    admin.goto("/admin/rules")
    editor = page.locator("textarea#text")
    typed = editor.input_value().replace("cooldown_months = 6\n", "cooldown_months = 9\n")
    editor.fill(typed)
    page.fill("input#weight_0", "0.5")
    with page.expect_navigation():
        page.click("form[action='/admin/rules/settings'] button")
    written = editor.input_value()
    assert re.search(r"^cooldown_months = 9$", written, re.M), written  # typed, kept
    assert re.search(r'metric = "win_rate"\nweight = 0.5\n', written), written
    expect(page.locator("input#weight_0")).to_have_value("0.5")
    admin.finish()


def test_a_long_paste_is_kept_whole_and_refused_with_its_size(walk, live_server: LiveServer):
    admin = walk()
    page = admin.page
    admin.sign_in(live_server.world.admin)
    admin.goto("/admin/rules")
    editor = page.locator("textarea#text")
    # Past 100,000 characters, in long lines: chromium inserts many short lines slowly (8,000
    # of them took five minutes), and the rule file's size is what this walk is about.
    pasted = editor.input_value() + ("# padding " + "x" * 290 + "\n") * 400
    editor.select_text()
    page.keyboard.insert_text(pasted)  # as a paste: the browser applies any maxlength
    assert len(editor.input_value()) == len(pasted)
    # As the form sends it (line breaks as CRLF), and as the server reads it: exactly as typed.
    size = len(editor.input_value().replace("\n", "\r\n").encode("utf-8"))
    page.fill("#note", "A long paste.")
    with admin.expecting(422, "/admin/rules/adopt"), page.expect_navigation():
        page.click("#draft-form button.primary")
    error = page.locator("#draft-form .field .error").first.inner_text()
    assert f"规则文件有 {size:,} 字节；规则文件最多 65,536 字节（64 KiB）" in error, error
    assert len(editor.input_value()) > 100_000
    admin.finish()


def test_a_long_change_note_is_kept_whole_and_refused_with_both_lengths(
        walk, live_server: LiveServer):
    """The change note takes 1,000 characters: a longer paste reaches the server whole, which
    refuses it with the limit and the length sent and shows it again; nothing is adopted."""
    admin = walk()
    page = admin.page
    admin.sign_in(live_server.world.admin)
    admin.goto("/admin/rules")
    editor = page.locator("textarea#text")
    editor.fill(editor.input_value().replace("cooldown_months = 6\n", "cooldown_months = 9\n"))
    pasted = "规则调整说明。" * 150  # 1,050 characters
    page.locator("#note").focus()
    page.keyboard.insert_text(pasted)  # as a paste: the browser applies any maxlength
    assert page.locator("#note").input_value() == pasted
    with admin.expecting(422, "/admin/rules/adopt"), page.expect_navigation():
        page.click("#draft-form button.primary")
    error = page.locator("#draft-form .field .error").first.inner_text()
    assert error == "此处最多 1,000 个字符，提交的文本有 1,050 个字符。请删减后重新提交。", error
    expect(page.locator("#note")).to_have_value(pasted)
    admin.finish()
