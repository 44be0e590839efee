"""An admin reads a refused import's report and the list of past imports on a laptop and on a
phone: the problems' reasons wrap inside their table, and neither page scrolls sideways."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bidhub.db import get_session
from bidhub.services.imports import import_file
from tests.browser.conftest import LiveServer
from tests.browser.world import by_username

LAPTOP = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
# Two accounts the file refuses: an ownership the department does not track (whose reason lists
# every type it does) and an amount below zero.
REFUSED = ("客户编号,客户名称,行业,所有制,分公司,年度金额\n"
           "KA-7701,宁夏银川经济技术开发区新材料产业投资发展集团有限公司,制造业,外资,BJ,300000\n"
           "KA-7702,甘肃兰州新区现代物流园区综合服务中心,物流,民营,BJ,-5\n")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_an_import_report_and_the_past_imports_fit_the_screen(walk, live_server: LiveServer,
                                                              locale):
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        result = import_file(session, by_username(session, world.admin), "accounts",
                             "客户导出-2026年3月-华北大区与西北大区合并版本.csv",
                             REFUSED.encode("utf-8"), valid_rows_only=False,
                             now=now - timedelta(minutes=5))
        session.commit()
        run_id = result.run_id
    admin = walk(locale=locale)
    page = admin.page
    admin.sign_in(world.admin)
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        admin.goto(f"/admin/imports/{run_id}")
        problems = page.locator("#import-problems")
        admin.check(problems.locator("tbody tr").count() == 2, "the report lists no 2 problems")
        width = page.evaluate("document.documentElement.scrollWidth")
        admin.check(width <= size["width"], f"the import report at {size['width']} px is "
                    f"{width} px wide: the page scrolls sideways")
        if size is LAPTOP:
            fits = problems.evaluate("table => table.scrollWidth <= table.parentElement"
                                     ".clientWidth")
            admin.check(fits, f"at {size['width']} px the problems run past their box instead "
                        "of wrapping their reasons")
        admin.goto("/admin/imports/")
        width = page.evaluate("document.documentElement.scrollWidth")
        admin.check(width <= size["width"], f"the past imports at {size['width']} px are "
                    f"{width} px wide: the page scrolls sideways")
    admin.finish()
