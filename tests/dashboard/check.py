#!/usr/bin/env python3
"""Check the Nest dashboard in a real headless Chromium against a running node.

`tests/dashboard.rs` starts a devnet, prepares a transfer and a market SKU, and runs
this script; `scripts/bench-dashboard` runs its benchmark alone (`--bench-only`).

The checks load every view of the dashboard and compare what it shows with what the
JSON API answers at the same moment: node name, key and peers, the final height, a
block's hash, transaction count and certificate, a transaction, an account's balance,
the device registry and radio counters, the market's SKU and the strategy's price curve.
They check that a new block appears without a reload, that the admin view refuses
without the token and with a wrong one, and disables and enables a plugin with the right
one, that no request URL ever carries the token, that the page logs no script or CSP
error, and that the overview loads at most `OVERVIEW_BYTES_MAX` bytes. A full-page
screenshot of each view lands in `--screenshots`.

The benchmark loads each view `--bench N` times, cold (browser cache off) and warm, and
prints the medians of Navigation Timing's `domContentLoadedEventEnd` and `loadEventEnd`,
of the time to interactive (the page's `nest-ready` mark: the first view drawn with its
data), and the bytes of the page and everything it fetched until then (`transferSize`,
`decodedBodySize`).

Exit status: 0 when every check passed, 1 with the failed check's message otherwise.
"""

import argparse
import base64
import json
import os
import statistics
import sys
import time
import urllib.request

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:
    sys.exit("error: python3-selenium is missing: apt-get install -y python3-selenium (./test.sh installs it)")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OVERVIEW_BYTES_MAX = 200_000
WAIT_S = 30
# Blocks the page may lag behind the API: it redraws once per block and per refresh.
HEIGHT_SLACK = 3


class Failure(Exception):
    """A check that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


class Api:
    """The node's JSON API, read directly (not through the browser)."""

    def __init__(self, url, token):
        self.url = url
        self.token = token

    def get(self, path, admin=False):
        request = urllib.request.Request(self.url + path, headers={"Accept": "application/json"})
        if admin:
            request.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return json.load(response)

    def status(self):
        return self.get("/v1/status")

    def final_height(self, chain="main"):
        return self.get(f"/v1/chains/{chain}/blocks?limit=1")["final_height"]


class Browser:
    """A headless Chromium on the dashboard, with helpers to wait for its views."""

    def __init__(self, url):
        self.url = url
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.access(path, os.X_OK):
                sys.exit(f"error: {path} is missing: apt-get install -y chromium chromium-driver (./test.sh installs them)")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         "--disable-background-networking", "--disable-component-update"):
            options.add_argument(argument)
        # Every request the browser makes, WebSockets included, for the token check.
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_script_timeout(WAIT_S)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.network_log = []
        self.console_log = []

    def quit(self):
        self.driver.quit()

    def open(self, page):
        """Loads the dashboard afresh on `page` (a full page load)."""
        self.collect_logs()
        self.driver.get("about:blank")
        self.driver.get(self.url + "/#" + page)
        self.driver.execute_script("performance.setResourceTimingBufferSize(100000)")
        return self.wait_ready(page_name(page))

    def go(self, page):
        """Moves to `page` inside the loaded dashboard, as a link would (no reload)."""
        self.driver.execute_script("delete document.body.dataset.ready; location.hash = arguments[0]", "#" + page)
        return self.wait_ready(page_name(page))

    def wait_ready(self, name):
        self.wait_for(lambda: self.driver.execute_script("return document.body.dataset.ready") == name,
                      f"the {name} view to draw")

    def wait_for(self, condition, what, timeout_s=WAIT_S):
        deadline = time.time() + timeout_s
        last_error = None
        while time.time() < deadline:
            try:
                if condition():
                    return
            except (WebDriverException, Failure, ValueError, KeyError, IndexError) as error:
                last_error = error
            time.sleep(0.2)
        raise Failure(f"timed out after {timeout_s} s waiting for {what}" + (f" ({last_error})" if last_error else ""))

    # Views redraw on every block: reading the DOM in one script call never meets an
    # element replaced between finding it and reading it.
    def text(self, element_id):
        """The visible text of `#element_id`."""
        text = self.driver.execute_script(
            "const found = document.getElementById(arguments[0]); return found ? found.innerText.trim() : null", element_id)
        check(text is not None, f"no #{element_id} on the {self.driver.execute_script('return document.body.dataset.page')} view")
        return text

    def texts(self, css):
        """The visible text of every element `css` selects, in document order."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((found) => found.innerText.trim())", css)

    def exists(self, css):
        return self.driver.execute_script("return document.querySelector(arguments[0]) !== null", css)

    def click(self, css):
        """Clicks `css` as a user would, again if a redraw replaced it meanwhile."""
        def clicked():
            self.driver.find_element(By.CSS_SELECTOR, css).click()
            return True
        self.wait_for(clicked, f"{css} to click")

    def type_into(self, element_id, text):
        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text + Keys.ENTER)

    def screenshot(self, directory, name):
        """Saves the whole page, not just the window, as `<name>.png`."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True, "clip": clip})
        with open(os.path.join(directory, name + ".png"), "wb") as file:
            file.write(base64.b64decode(shot["data"]))

    def collect_logs(self):
        """Moves the browser's logs so far into `network_log` and `console_log`."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
                self.network_log.append(message["params"])
        self.console_log.extend(self.driver.get_log("browser"))

    def entry_names(self):
        """The URLs of the current document's Resource and Navigation Timing entries."""
        return self.driver.execute_script("return performance.getEntries().map((entry) => entry.name)")


def page_name(page):
    """The view a hash route draws (the page's `data-ready` value)."""
    parts = page.strip("/").split("/")
    return {"": "overview", "market": "sku" if len(parts) > 1 else "market"}.get(parts[0], parts[0])


def formatted(number):
    """A number as the page writes it (en-US thousands separators)."""
    return f"{number:,}"


# ------------------------------------------------------------------ checks


def check_overview(browser, api, shots):
    status = api.status()
    browser.open("/")
    browser.wait_for(lambda: browser.exists("#final-height-main"), "the chain's figures")
    check(browser.text("node-name-value") == status["name"], f"node name: {browser.text('node-name-value')!r}")
    check(browser.text("node-key") == status["public_key"], "the node key differs from /v1/status")
    check(browser.text("node-version") == status["version"], "the version differs from /v1/status")
    browser.wait_for(lambda: browser.text("peer-count") == str(api.status()["peers"]), "the peer count of /v1/status")
    check_final_height(browser, api)
    final, best = [int(text) for text in browser.texts("#final-height-main, #best-height-main")]
    check(best >= final, f"best height {best} below the final height {final}")
    check("MiB" in browser.text("node-memory"), f"memory: {browser.text('node-memory')!r}")
    check("tx/s" in browser.text("tx-rate-main"), f"throughput: {browser.text('tx-rate-main')!r}")
    check("transactions" in browser.text("mempool-main"), f"mempool: {browser.text('mempool-main')!r}")
    check(browser.exists("svg.chart rect.bar"), "no block-time bars on the overview")
    browser.wait_for(lambda: "% of a core" in browser.text("node-cpu"), "a CPU figure (two samples)")
    browser.screenshot(shots, "overview")


def check_final_height(browser, api):
    """The shown final height lies between the API's before and after reading it."""
    def matches():
        before = api.final_height()
        shown = int(browser.text("final-height-main"))
        after = api.final_height()
        check(before - HEIGHT_SLACK <= shown <= after, f"final height shown {shown}, API {before}..{after}")
        return True
    browser.wait_for(matches, "the final height to match the API")


def check_live_update(browser):
    """A new block shows up on the loaded page: no navigation, no reload."""
    browser.driver.execute_script("window.nestCheckMarker = 'still here'")
    shown = int(browser.text("final-height-main"))
    browser.wait_for(lambda: int(browser.text("final-height-main")) > shown, "a new block without a reload")
    marker = browser.driver.execute_script("return window.nestCheckMarker")
    navigations = browser.driver.execute_script("return performance.getEntriesByType('navigation').length")
    check(marker == "still here" and navigations == 1, "the page reloaded to show the new block")
    check(browser.text("live").startswith("live"), f"block stream badge: {browser.text('live')!r}")


def check_chains(browser, api, shots):
    browser.go("/chains")
    top_row = lambda: browser.texts("table.blocks tbody tr:first-child td")
    browser.wait_for(lambda: int(top_row()[0]) >= 0, "the block list")
    height = int(top_row()[0])
    browser.wait_for(lambda: int(top_row()[0]) > height, "a new block at the top of the list")
    cells = top_row()
    height = int(cells[0])
    block = api.get(f"/v1/chains/main/blocks/{height}?txs=hashes")
    check(cells[1] == block["hash"][:8] + "…" + block["hash"][-4:], f"block {height}: hash {cells[1]!r}")
    check(cells[3] == str(block["tx_count"]), f"block {height}: {cells[3]} transactions shown")
    browser.screenshot(shots, "chains")


def check_block_and_transaction(browser, api, shots, tx_hash, tx_height):
    block = api.get(f"/v1/chains/main/blocks/{tx_height}")
    browser.go(f"/block/main/{tx_height}")
    check(browser.text("block-hash") == block["hash"], f"block hash shown {browser.text('block-hash')!r}")
    check(browser.text("block-tx-count") == str(block["tx_count"]), "block transaction count differs")
    certificate_bytes = len(block["certificate"]) // 2
    check(browser.text("block-certificate").startswith(f"{certificate_bytes} bytes"), "certificate size differs")
    rows = browser.texts("#block-txs tbody a[href^='#/tx/']")
    check(len(rows) == block["tx_count"], f"{len(rows)} transactions listed, the block has {block['tx_count']}")
    browser.screenshot(shots, "block")
    # Follow the transaction's link, as an operator would.
    browser.driver.execute_script("delete document.body.dataset.ready")
    browser.click(f"#block-txs a[href='#/tx/main/{tx_hash}']")
    browser.wait_ready("tx")
    check(browser.text("tx-hash") == tx_hash, f"transaction hash shown {browser.text('tx-hash')!r}")
    check(browser.text("tx-height") == str(tx_height), f"transaction height shown {browser.text('tx-height')!r}")
    browser.screenshot(shots, "transaction")


def check_account(browser, api, shots, account):
    browser.go(f"/account/main/{account}")
    balance = api.get(f"/v1/chains/main/accounts/{account}")["balance"]
    check(browser.text("account-balance") == formatted(balance) + " µNEST",
          f"balance shown {browser.text('account-balance')!r}, API {balance}")
    browser.screenshot(shots, "account")


def check_devices(browser, api, shots):
    browser.go("/devices")
    devices = api.get("/v1/devices")
    check(browser.text("device-count") == str(len(devices)), f"{browser.text('device-count')} devices, API {len(devices)}")
    rows = browser.texts("#device-table tbody a[href^='#/device/']")
    check(len(devices) > 0 and len(rows) == len(devices), f"{len(rows)} device rows for {len(devices)} devices")
    for radio in api.get("/v1/radios"):
        def counters_match(radio_id=radio["id"]):
            current = {entry["id"]: entry for entry in api.get("/v1/radios")}[radio_id]["link"]
            shown = int(browser.text(f"radio-accepted-{radio_id}").replace(",", ""))
            return abs(shown - current["accepted"]) <= 8 and browser.text(f"radio-rejected-{radio_id}") == formatted(current["rejected"])
        browser.wait_for(counters_match, f"radio {radio['id']}'s counters to match /v1/radios")
    browser.screenshot(shots, "devices")
    uid = devices[0]["uid"]
    # Read before the page renders: a device sends every few seconds, so a reading read
    # after it may be newer than what the page fetched.
    readings = api.get(f"/v1/devices/{uid}")["readings"]
    browser.driver.execute_script("delete document.body.dataset.ready")
    browser.click(f"#device-table a[href='#/device/{uid}']")
    browser.wait_ready("device")
    check(browser.text("device-uid") == uid, "the device page shows another µID")
    shown = browser.texts("#device-readings tbody tr td:nth-child(2)")
    latest_shown = max((int(value) for value in shown if value.isdigit()), default=None)
    check(not readings or (latest_shown is not None and latest_shown >= readings[0]["counter"]),
          f"the device's latest reading {readings[0]['counter'] if readings else None} is missing from {shown}")
    browser.screenshot(shots, "device")


def check_market(browser, api, shots, sku):
    browser.go("/market")
    skus = [record["id"] for record in api.get("/v1/chains/main/market/skus")]
    check(sku in skus, f"the API lists no SKU {sku!r}")
    links = browser.texts("#sku-table tbody a")
    check(sorted(set(links) & set(skus)) == sorted(skus), f"SKUs shown {links}, API {skus}")
    browser.screenshot(shots, "market")
    browser.go(f"/market/main/{sku}")
    record = api.get(f"/v1/chains/main/market/skus/{sku}")["record"]
    check(browser.text("sku-unit-price") == formatted(record["terms"]["unit_price"]), "the SKU's unit price differs")
    check(not browser.exists("#curve-points") and browser.exists("#token-form"),
          "the strategy's price curve shows without the admin token")


def check_admin(browser, api, shots, token, plugin):
    browser.go("/plugins")
    status = api.status()
    rows = browser.texts("#package-table tbody tr")
    check(len(rows) == len(status["plugins"]), f"{len(rows)} packages shown, API {len(status['plugins'])}")
    # Without a token: a form, no actions, and the admin API refuses the page.
    check(browser.exists("#token-form") and not browser.exists("#admin-table"), "admin actions show without a token")
    refused = browser.driver.execute_async_script(
        "const done = arguments[0]; fetch('/v1/admin/plugins').then((r) => done(r.status), (e) => done(String(e)))")
    check(refused == 401, f"an admin call without the token answered {refused}")
    browser.screenshot(shots, "plugins")
    # A wrong token is refused and forgotten.
    browser.type_into("token-input", "f" * 64)
    browser.wait_for(lambda: "Refused" in browser.text("admin-message"), "the wrong token to be refused")
    check(browser.driver.execute_script("return sessionStorage.getItem('nest.adminToken')") is None,
          "a refused token was kept")
    # The right token unlocks the actions: disable a plugin, then enable it.
    browser.type_into("token-input", token)
    browser.wait_for(lambda: browser.exists("#admin-table"), "the admin table after the right token")
    set_plugin_state(browser, api, plugin, "disable", "disabled")
    browser.screenshot(shots, "plugins-admin")
    set_plugin_state(browser, api, plugin, "enable", "running")


def set_plugin_state(browser, api, plugin, action, expected):
    browser.click(f".actions[data-plugin='{plugin}'] button.{action}")
    browser.wait_for(lambda: f"{action} {plugin}: " in browser.text("admin-message"), f"the {action} of {plugin}")
    states = [slot["plugin"]["state"] for slot in api.status()["markets"] if slot["id"] == plugin]
    check(states == [expected], f"after {action}, the API shows {plugin} as {states}")
    shown = [row for row in browser.texts("#instance-table tbody tr") if row.startswith(f"market {plugin}")]
    check(len(shown) == 1 and expected in shown[0].split(), f"after {action}, the page shows {shown}")


def check_price_curve(browser, api, shots, sku):
    """With the token kept for the tab, the SKU page draws the strategy's price curve."""
    browser.go(f"/market/main/{sku}")
    browser.wait_for(lambda: browser.exists("#curve-points"), "the price curve")
    points = api.get(f"/v1/admin/market/chart/{sku}?points=21", admin=True)
    expected = f"{len(points)} points, from {formatted(points[0]['unit_price'])} to {formatted(points[-1]['unit_price'])}"
    check(browser.text("curve-points") == expected, f"price curve: {browser.text('curve-points')!r}, API {expected!r}")
    browser.screenshot(shots, "sku")


def check_token_never_in_a_url(browser, token):
    browser.collect_logs()
    names = browser.entry_names()
    urls = [params.get("request", {}).get("url") or params.get("url", "") for params in browser.network_log]
    check(len(names) > 10 and len(urls) > 10, f"too few requests seen ({len(names)} entries, {len(urls)} logged)")
    leaks = [url for url in names + urls if token in url]
    check(not leaks, f"the token appears in request URLs: {leaks[:3]}")
    check(token not in browser.driver.current_url, "the token appears in the page's URL")
    stored = browser.driver.execute_script("return document.cookie + JSON.stringify(localStorage)")
    check(token not in stored, "the token is in a cookie or localStorage")
    admin_calls = [params["request"] for params in browser.network_log
                   if "/v1/admin/" in params.get("request", {}).get("url", "")]
    with_header = [call for call in admin_calls if call["headers"].get("Authorization") == "Bearer " + token]
    check(with_header, "no admin call carried the token in its Authorization header")


def check_console_clean(browser):
    """No script error or Content-Security-Policy violation; refused admin calls are expected."""
    browser.collect_logs()
    problems = [entry["message"] for entry in browser.console_log
                if entry["level"] == "SEVERE" and "status of 401" not in entry["message"]]
    check(not problems, "the browser logged errors: " + "; ".join(problems[:5]))


# ------------------------------------------------------------------ benchmark

PAGES = ["/", "/chains", "/devices", "/market", "/plugins"]


def load_figures(browser, page):
    """One full load of `page`: timings (ms) and bytes, once the view is drawn."""
    browser.driver.get("about:blank")
    browser.driver.get(browser.url + "/#" + page)
    browser.wait_for(lambda: browser.driver.execute_script("return performance.getEntriesByName('nest-ready').length") > 0,
                     f"{page} to become interactive")
    return browser.driver.execute_script("""
        const navigation = performance.getEntriesByType('navigation')[0];
        const ready = performance.getEntriesByName('nest-ready')[0].startTime;
        const loaded = [navigation, ...performance.getEntriesByType('resource').filter((entry) => entry.startTime <= ready)];
        const sum = (field) => loaded.reduce((total, entry) => total + (entry[field] || 0), 0);
        return { dom_content_loaded_ms: navigation.domContentLoadedEventEnd, load_ms: navigation.loadEventEnd,
                 interactive_ms: ready, transfer_bytes: sum('transferSize'), decoded_bytes: sum('decodedBodySize'),
                 requests: loaded.length };
    """)


def bench(browser, loads):
    """Medians of `loads` cold and warm loads of every page, printed as a table and JSON."""
    results = []
    for cache in ("cold", "warm"):
        browser.driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": cache == "cold"})
        for page in PAGES:
            if cache == "warm":
                load_figures(browser, page)  # fills the cache
            samples = [load_figures(browser, page) for _ in range(loads)]
            median = {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}
            results.append({"page": page, "cache": cache, "loads": loads, **median})
    browser.driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    print(f"dashboard load, medians of {loads} loads per page (headless Chromium, Navigation Timing):")
    print(f"{'page':<10} {'cache':<5} {'DOMContentLoaded':>16} {'load':>8} {'interactive':>11} {'transferred':>12} {'decoded':>10} {'requests':>8}")
    for row in results:
        print(f"{row['page']:<10} {row['cache']:<5} {row['dom_content_loaded_ms']:>13.0f} ms {row['load_ms']:>5.0f} ms "
              f"{row['interactive_ms']:>8.0f} ms {row['transfer_bytes']:>10.0f} B {row['decoded_bytes']:>8.0f} B {row['requests']:>8.0f}")
    print("json " + json.dumps(results))
    return results


def check_overview_budget(results):
    overview = [row for row in results if row["page"] == "/" and row["cache"] == "cold"][0]
    check(overview["decoded_bytes"] <= OVERVIEW_BYTES_MAX,
          f"the overview loads {overview['decoded_bytes']:.0f} bytes, over the {OVERVIEW_BYTES_MAX} budget")


# ------------------------------------------------------------------ main


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the node's API, http://127.0.0.1:<port>")
    parser.add_argument("--token-file", help="the node's data/api.token (needed by the checks)")
    parser.add_argument("--screenshots", default="target/dashboard-screenshots")
    parser.add_argument("--tx-hash", help="a committed transaction on chain main")
    parser.add_argument("--tx-height", type=int, help="the height of its block")
    parser.add_argument("--account", help="an account on chain main")
    parser.add_argument("--sku", default="wifi", help="a shelved SKU whose strategy is installed")
    parser.add_argument("--plugin", default="price-tag", help="a market plugin to disable and enable")
    parser.add_argument("--bench", type=int, default=0, help="loads per page for the benchmark (0: none)")
    parser.add_argument("--bench-only", action="store_true", help="only the benchmark")
    return parser.parse_args()


def run_checks(browser, options):
    with open(options.token_file) as file:
        token = file.read().strip()
    api = Api(options.url.rstrip("/"), token)
    shots = options.screenshots
    os.makedirs(shots, exist_ok=True)
    steps = [
        ("overview", lambda: check_overview(browser, api, shots)),
        ("live update", lambda: check_live_update(browser)),
        ("chains", lambda: check_chains(browser, api, shots)),
        ("block and transaction", lambda: check_block_and_transaction(browser, api, shots, options.tx_hash, options.tx_height)),
        ("account", lambda: check_account(browser, api, shots, options.account)),
        ("devices", lambda: check_devices(browser, api, shots)),
        ("market", lambda: check_market(browser, api, shots, options.sku)),
        ("admin", lambda: check_admin(browser, api, shots, token, options.plugin)),
        ("price curve", lambda: check_price_curve(browser, api, shots, options.sku)),
        ("token never in a URL", lambda: check_token_never_in_a_url(browser, token)),
        ("browser console", lambda: check_console_clean(browser)),
    ]
    for name, step in steps:
        started = time.time()
        step()
        print(f"ok   {name} ({time.time() - started:.1f} s)", flush=True)


def main():
    options = arguments()
    browser = Browser(options.url.rstrip("/"))
    try:
        if not options.bench_only:
            run_checks(browser, options)
        if options.bench or not options.bench_only:
            results = bench(browser, max(options.bench, 1))
            check_overview_budget(results)
            print("ok   overview payload within budget", flush=True)
    except Failure as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    except WebDriverException as error:
        print(f"FAIL the browser: {error.msg}", file=sys.stderr)
        return 1
    finally:
        browser.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
