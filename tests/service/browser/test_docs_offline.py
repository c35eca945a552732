"""/docs and /redoc render every operation of the OpenAPI document with nothing from the internet."""

from __future__ import annotations

import pytest

from .browser_support import EmbeddedServer, OutsideWorld

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operations(schema: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in schema["paths"].items() for method in item if method in HTTP_METHODS}


def wait_for_count(browser, script: str, expected: int, timeout_s: float = 60) -> int:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout_s).until(lambda d: d.execute_script(script) >= expected)
    return browser.execute_script(script)


def test_swagger_ui_lists_every_operation_offline(browser, outside_world: OutsideWorld, server_keys_off: EmbeddedServer):
    expected = operations(server_keys_off.app.openapi())
    outside_world.take()
    browser.get(server_keys_off.url + "/docs")
    count = wait_for_count(browser, "return document.querySelectorAll('.opblock').length", len(expected))
    shown = browser.execute_script(
        "return [...document.querySelectorAll('.opblock')].map(b => ["
        "b.querySelector('.opblock-summary-method').textContent.toLowerCase(),"
        "b.querySelector('.opblock-summary-path').dataset.path])"
    )
    assert count == len(expected)
    assert sorted(tuple(pair) for pair in shown) == sorted(expected)
    assert outside_world.take() == []


def test_redoc_lists_every_operation_offline(browser, outside_world: OutsideWorld, server_keys_off: EmbeddedServer):
    expected = operations(server_keys_off.app.openapi())
    outside_world.take()
    browser.get(server_keys_off.url + "/redoc")
    script = "return document.querySelectorAll('[data-section-id^=\"operation/\"]').length"
    assert wait_for_count(browser, script, len(expected)) == len(expected)
    assert outside_world.take() == []


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_name_no_other_site(server_keys_off: EmbeddedServer, page: str):
    html = server_keys_off.client.get(page).text
    assert "/static/vendor/" in html
    assert "cdn." not in html and "fonts.googleapis" not in html
