"""The admin console in a real browser: Debian's headless Chromium driven by Selenium against the real server on
loopback (its own server per module, so the list holds only what these tests submit). Every test saves a screenshot
in its pytest output directory."""

import json
import os
import re
import shutil
import uuid

import pytest
import requests

import conftest as http_interop

selenium = pytest.importorskip("selenium", reason="selenium is installed by scripts/setup.sh (Tests/Interop/requirements.txt)")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "console-test-token"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("Chromium not found: install Debian's chromium and chromium-driver (scripts/setup.sh does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The profile in pytest's temporary directory, which is removed: left to itself, Chromium makes one in TMPDIR
    # (org.chromium.Chromium.*) and does not always remove it (scripts/test.sh's leftover check found one).
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--disable-gpu",
        "--user-data-dir=%s" % profile,
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _server(tmp_path_factory, name, **env):
    server = http_interop.DtmServer(http_interop._server_binary(), tmp_path_factory.mktemp(name), extra_env=env)
    server.start()
    return server


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    server = _server(tmp_path_factory, "console")
    yield server
    server.stop()


def gid(tag):
    return "console-%s-%s" % (tag, uuid.uuid4().hex[:10])


def saga(server, busi, g, fail_second=False, wait=True):
    steps = [{"action": busi.url("ConsoleOut"), "compensate": busi.url("ConsoleOutRevert")},
             {"action": busi.url("ConsoleInFail" if fail_second else "ConsoleIn"), "compensate": busi.url("ConsoleInRevert")}]
    body = {"gid": g, "trans_type": "saga", "steps": steps, "payloads": ['{"amount":1}', '{"amount":1}'], "wait_result": wait}
    return requests.post(server.api + "/submit", json=body, timeout=10)


def wait_for(driver, condition, timeout=15):
    # The page re-renders itself every few seconds (live view): an element found a moment ago may be gone.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)


def shot(driver, tmp_path, name):
    path = tmp_path / (name + ".png")
    driver.save_screenshot(str(path))
    keep = os.environ.get("CONSOLE_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, os.path.join(keep, name + ".png"))


def rows(driver):
    return {tr.get_attribute("data-gid"): tr.find_element(By.CSS_SELECTOR, ".status").text
            for tr in driver.find_elements(By.CSS_SELECTOR, "#transactions tr[data-gid]")}


def test_list_shows_filters_and_pages(browser, console_server, busi, tmp_path):
    busi.on("ConsoleInFail", http_interop.failure())
    ok = [gid("ok") for _ in range(5)]
    bad = [gid("bad") for _ in range(2)]
    for g in ok:
        assert saga(console_server, busi, g).status_code == 200
    for g in bad:
        assert saga(console_server, busi, g, fail_second=True).status_code == 409
    browser.get(console_server.base_url + "/")
    wait_for(browser, lambda d: set(ok + bad) <= set(rows(d)))
    assert all(rows(browser)[g] == "succeed" for g in ok) and all(rows(browser)[g] == "failed" for g in bad)
    assert "open to anyone" in browser.find_element(By.ID, "banner").text
    shot(browser, tmp_path, "console-list")

    Select(browser.find_element(By.ID, "filter-status")).select_by_value("failed")
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait_for(browser, lambda d: set(rows(d)) == set(bad))
    shot(browser, tmp_path, "console-list-failed")

    # The type filter: a TCC among the sagas, alone when the list is narrowed to tcc.
    tcc = gid("tcc-filter")
    assert requests.post(console_server.api + "/prepare", json={"gid": tcc, "trans_type": "tcc"}, timeout=10).status_code == 200
    browser.get(console_server.base_url + "/#/?transType=tcc")
    wait_for(browser, lambda d: tcc in rows(d))
    assert not set(rows(browser)) & set(ok + bad), "no saga under the tcc filter"
    browser.get(console_server.base_url + "/#/?transType=saga")
    wait_for(browser, lambda d: set(ok + bad) <= set(rows(d)))
    assert tcc not in rows(browser)

    # Paging: three to a page, following "Next page" until it is gone.
    browser.get(console_server.base_url + "/admin/#/?limit=3")
    seen = []
    for _ in range(10):
        wait_for(browser, lambda d: len(rows(d)) > 0)
        seen += list(rows(browser))
        links = browser.find_elements(By.ID, "next-page")
        if not links:
            break
        first_row = browser.find_element(By.CSS_SELECTOR, "#transactions tr")
        links[0].click()
        wait_for(browser, EC.staleness_of(first_row))
    assert set(ok + bad) <= set(seen) and len(seen) == len(set(seen))


def test_detail_of_a_failed_saga(browser, console_server, busi, tmp_path):
    busi.on("ConsoleInFail", http_interop.failure())
    g = gid("detail")
    assert saga(console_server, busi, g, fail_second=True).status_code == 409
    browser.get(console_server.base_url + "/#/trans/" + g)
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#branches tr")))
    statuses = {tr.get_attribute("data-branch"): tr.find_element(By.CSS_SELECTOR, ".status").text
                for tr in browser.find_elements(By.CSS_SELECTOR, "#branches tr")}
    assert statuses == {"01/compensate": "succeed", "01/action": "succeed", "02/compensate": "succeed", "02/action": "failed"}
    assert browser.find_element(By.CSS_SELECTOR, "#field-status .status").text == "failed"
    assert g in browser.find_element(By.ID, "raw").text
    steps = {g.get_attribute("data-step"): (g.get_attribute("data-action"), g.get_attribute("data-compensate"))
             for g in browser.find_elements(By.CSS_SELECTOR, "#saga-graph g.step")}
    assert steps == {"01": ("succeed", "succeed"), "02": ("failed", "succeed")}, steps
    assert len(browser.find_elements(By.CSS_SELECTOR, "#saga-graph line.edge")) == 1, "a sequential saga is a chain"
    assert not browser.find_elements(By.ID, "force-stop"), "no force stop on a finished transaction"
    assert not browser.find_elements(By.ID, "retry-now"), "no retry on a finished transaction"
    shot(browser, tmp_path, "console-detail-failed")


def test_force_stop_and_retry_now(browser, console_server, busi, tmp_path):
    # A prepared TCC: counted on the list page; force stop turns it failed in the page, without a reload.
    g = gid("tcc")
    before = requests.get(console_server.api + "/stats", timeout=5).json()["prepared"]
    r = requests.post(console_server.api + "/prepare", json={"gid": g, "trans_type": "tcc"}, timeout=10)
    assert r.status_code == 200, r.text
    browser.get(console_server.base_url + "/#/")
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#count-prepared b").text == str(before + 1))
    browser.get(console_server.base_url + "/#/trans/" + g)
    wait_for(browser, EC.element_to_be_clickable((By.ID, "force-stop"))).click()
    wait_for(browser, EC.alert_is_present()).accept()
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#field-status .status").text == "failed")
    assert requests.get(console_server.api + "/stats", timeout=5).json()["prepared"] == before
    assert "Force stop: done." in browser.find_element(By.ID, "action-result").text
    logged = [line for line in console_server.log_tail(200000).splitlines() if "admin action" in line and g in line]
    assert logged and "op=forceStop" in logged[-1] and "who=anyone (no AdminToken set)" in logged[-1], logged
    shot(browser, tmp_path, "console-force-stopped")

    # A saga whose branch answers 500 backs off; once the branch is fixed, retry now finishes it.
    busi.on("ConsoleIn", http_interop.Response(500, {"error": "down"}))
    g = gid("retry")
    assert saga(console_server, busi, g, wait=False).status_code == 200
    browser.get(console_server.base_url + "/#/trans/" + g)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#field-status .status")
             and d.find_element(By.CSS_SELECTOR, "#field-status .status").text == "submitted")
    busi.on("ConsoleIn", http_interop.Response(200, {"dtm_result": "SUCCESS"}))
    browser.find_element(By.ID, "retry-now").click()
    wait_for(browser, EC.alert_is_present()).accept()
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#field-status .status").text == "succeed", timeout=20)
    shot(browser, tmp_path, "console-retried")


def test_token_login(browser, tmp_path_factory, tmp_path):
    server = _server(tmp_path_factory, "console-token", ADMIN_TOKEN=TOKEN, AUTH_TOKEN=TOKEN)
    try:
        browser.get(server.base_url + "/")
        browser.execute_script("sessionStorage.clear()")
        browser.get(server.base_url + "/?again#/")
        wait_for(browser, EC.presence_of_element_located((By.ID, "login")))
        assert not browser.find_elements(By.ID, "transactions"), "no data without login"
        assert requests.get(server.api + "/all", timeout=5).status_code == 401
        shot(browser, tmp_path, "console-login")
        browser.find_element(By.ID, "token").send_keys("wrong")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_for(browser, EC.text_to_be_present_in_element((By.ID, "login-error"), "Wrong token"))
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_for(browser, EC.presence_of_element_located((By.ID, "transactions")))
        assert browser.find_element(By.ID, "banner").get_attribute("hidden") is not None, "no 'open' banner with a token"
        shot(browser, tmp_path, "console-logged-in")
    finally:
        browser.execute_script("sessionStorage.clear()")
        server.stop()


def test_pages_and_headers(console_server):
    for path in ("/", "/admin", "/admin/", "/admin/trans/x", "/console.js", "/admin/console.css"):
        r = requests.get(console_server.base_url + path, timeout=5)
        assert r.status_code == 200, path
        csp = r.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert requests.get(console_server.base_url + "/console.js", timeout=5).headers["Content-Type"].startswith("text/javascript")
    assert requests.get(console_server.base_url + "/admin/", timeout=5).headers["Content-Type"].startswith("text/html")
    # No inline script: every <script> has a src and no body (the CSP would refuse one anyway).
    html = requests.get(console_server.base_url + "/", timeout=5).text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attrs and body.strip() == "" for attrs, body in scripts)
    assert requests.get(console_server.base_url + "/nope.js", timeout=5).status_code == 404


def test_concurrent_saga_graph(browser, console_server, busi, tmp_path):
    g = gid("dag")
    steps = [{"action": busi.url("Dag%d" % i), "compensate": busi.url("Dag%dRevert" % i)} for i in range(3)]
    body = {"gid": g, "trans_type": "saga", "steps": steps, "payloads": ["{}"] * 3, "wait_result": True,
            "concurrent": True, "custom_data": json.dumps({"orders": {"2": [0, 1]}, "concurrent": True})}
    r = requests.post(console_server.api + "/submit", json=body, timeout=10)
    assert r.status_code == 200, r.text
    browser.get(console_server.base_url + "/#/trans/" + g)
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#saga-graph g.step")))
    boxes = {e.get_attribute("data-step"): e.find_element(By.CSS_SELECTOR, "rect").get_attribute("x")
             for e in browser.find_elements(By.CSS_SELECTOR, "#saga-graph g.step")}
    # Steps 01 and 02 run first (same column); 03 waits for both (next column), with an edge from each.
    assert boxes["01"] == boxes["02"] and float(boxes["03"]) > float(boxes["01"]), boxes
    assert len(browser.find_elements(By.CSS_SELECTOR, "#saga-graph line.edge")) == 2
    shot(browser, tmp_path, "console-dag")


def test_tcc_timeline_and_phone_width(browser, console_server, busi, tmp_path):
    g = gid("tl")
    assert requests.post(console_server.api + "/prepare", json={"gid": g, "trans_type": "tcc"}, timeout=10).status_code == 200
    for branch in ("01", "02"):
        reg = {"gid": g, "trans_type": "tcc", "branch_id": branch, "data": "{}",
               "confirm": busi.url("TlConfirm"), "cancel": busi.url("TlCancel")}
        assert requests.post(console_server.api + "/registerBranch", json=reg, timeout=10).status_code == 200
    assert requests.post(console_server.api + "/submit", json={"gid": g, "trans_type": "tcc", "wait_result": True},
                         timeout=10).status_code == 200
    browser.get(console_server.base_url + "/#/trans/" + g)
    wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#timeline g.event")))
    events = [(e.get_attribute("data-branch"), e.get_attribute("data-status"))
              for e in browser.find_elements(By.CSS_SELECTOR, "#timeline g.event")]
    assert sorted(events) == [("01/confirm", "succeed"), ("02/confirm", "succeed")], events
    shot(browser, tmp_path, "console-tcc-timeline")
    # A phone's width: the list keeps its gid, type and status columns and needs no sideways scrolling.
    browser.set_window_size(390, 844)
    try:
        browser.get(console_server.base_url + "/#/")
        wait_for(browser, lambda d: len(rows(d)) > 0)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "thead th") if th.is_displayed()]
        assert header == ["gid", "type", "status"], header
        shot(browser, tmp_path, "console-phone")
    finally:
        browser.set_window_size(1280, 900)


def test_attention_view(browser, tmp_path_factory, busi, tmp_path):
    # AlertRetryLimit 0: one back-off is already beyond it.
    server = _server(tmp_path_factory, "console-attention", ALERT_RETRY_LIMIT="0")
    try:
        busi.on("AttnIn", http_interop.Response(500, {"error": "inventory service down"}))
        g = gid("attn")
        steps = [{"action": busi.url("AttnOut"), "compensate": busi.url("AttnOutRevert")},
                 {"action": busi.url("AttnIn"), "compensate": busi.url("AttnInRevert")}]
        body = {"gid": g, "trans_type": "saga", "steps": steps, "payloads": ["{}", "{}"]}
        assert requests.post(server.api + "/submit", json=body, timeout=10).status_code == 200
        ok = gid("attn-ok")
        assert saga(server, busi, ok).status_code == 200
        browser.get(server.base_url + "/#/attention")
        wait_for(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#attention tr[data-gid='%s']" % g)))
        row = browser.find_element(By.CSS_SELECTOR, "#attention tr[data-gid='%s']" % g)
        assert "500" in row.find_element(By.CSS_SELECTOR, ".last-error").text, row.text
        assert int(row.find_element(By.CSS_SELECTOR, ".retries").text) >= 1
        assert not browser.find_elements(By.CSS_SELECTOR, "#attention tr[data-gid='%s']" % ok), "a finished saga needs no attention"
        api = requests.get(server.api + "/attention", timeout=5).json()
        assert [i["transaction"]["gid"] for i in api["items"]] == [g] and "500" in api["items"][0]["last_error"]
        shot(browser, tmp_path, "console-attention")
    finally:
        server.stop()


def test_branch_headers_are_masked(browser, console_server, busi):
    g = gid("secret")
    steps = [{"action": busi.url("SecretOut"), "compensate": busi.url("SecretOutRevert")}]
    body = {"gid": g, "trans_type": "saga", "steps": steps, "payloads": ["{}"], "wait_result": True,
            "branch_headers": {"Authorization": "Bearer very-secret-value"}}
    assert requests.post(console_server.api + "/submit", json=body, timeout=10).status_code == 200
    browser.get(console_server.base_url + "/#/trans/" + g)
    wait_for(browser, EC.presence_of_element_located((By.ID, "raw")))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "very-secret-value" not in page
    assert "***" in browser.find_element(By.ID, "raw").text
