"""Herald in a real browser: herald.js, native EventSource on /sse, and the web console.

Each test drives headless Chromium against real nodes (and a real redis-server where a node
restarts), and asserts what a page would see.
"""
import os

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from conftest import REPORTS, http, running_cluster, running_hook_backend, running_node, running_proxy, wait_until

PRELUDE = """
const done = arguments[arguments.length - 1];
const args = Array.from(arguments).slice(0, -1);
const until = async (condition, what, ms = 15000) => {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};
"""


def js(driver, body, *arguments):
    """Runs `body` as an async function in the page; returns its result, raises its error."""
    script = PRELUDE + "(async () => { " + body + " })().then(done, (error) => done({ __error: String(error && error.stack || error) }));"
    result = driver.execute_async_script(script, *arguments)
    if isinstance(result, dict) and "__error" in result:
        raise AssertionError(result["__error"])
    return result


START_CLIENT = """
const { Herald, VERSION } = await import('/herald.js');
window.got = [];
window.recoveries = [];
window.states = [];
window.herald = new Herald(args[0], args[2] || {});
herald.on('state', (state) => window.states.push(state));
herald.on('recovery', (report) => window.recoveries.push(report));
const subscribed = new Promise((resolve) => herald.on('subscribed', (m) => { if (m.channel === args[1]) resolve(m); }));
herald.subscribe(args[1], (notification) => window.got.push(notification));
const message = await subscribed;
return { version: VERSION, state: herald.state, transport: herald.transport, offset: message.offset, epoch: message.epoch };
"""


def titles(driver):
    return js(driver, "return window.got.map((n) => n.title);")


def wait_for_titles(driver, count):
    js(driver, "await until(() => window.got.length >= args[0], args[0] + ' notifications'); return true;", count)
    return titles(driver)


def test_herald_js_receives_a_rest_publish(page):
    with running_node() as node:
        page.get(node.url + "/health")
        started = js(page, START_CLIENT, node.ws, "news")
        assert started["state"] == "connected"
        assert started["transport"] == "websocket"
        assert started["version"]
        node.publish("news", "Breaking", body="Big news!")
        assert wait_for_titles(page, 1) == ["Breaking"]
        notification = js(page, "return window.got[0];")
        assert notification["type"] == "notification"
        assert notification["body"] == "Big news!"
        assert notification["offset"] == 1
        assert js(page, "return window.herald.position('news').offset;") == 1


def test_herald_js_recovers_what_was_published_while_its_node_restarted(page):
    with running_cluster(2, "--shutdown-grace", "1") as (near, far):
        page.get(near.url + "/health")
        js(page, START_CLIENT, near.ws, "recover", {"backoffBase": 100, "backoffCap": 500})
        far.publish("recover", "n1")
        assert wait_for_titles(page, 1) == ["n1"]
        near.stop()
        js(page, "await until(() => window.herald.state !== 'connected', 'the disconnect'); return true;")
        for number in range(2, 6):
            far.publish("recover", f"n{number}")
        near.start()
        js(page, "await until(() => window.recoveries.length >= 1, 'the recovery'); return true;")
        far.publish("recover", "n6")
        assert wait_for_titles(page, 6) == [f"n{number}" for number in range(1, 7)]
        recovery = js(page, "return window.recoveries[0];")
        assert recovery["recovered"] is True
        assert recovery["replayed"] == 4
        # Exactly once: nothing else arrives after a final marker.
        far.publish("recover", "end")
        assert wait_for_titles(page, 7)[-1] == "end"
        assert len(titles(page)) == 7


def test_herald_js_falls_back_to_server_sent_events(page):
    with running_node() as node:
        page.get(node.url + "/health")
        # /blocked refuses WebSocket upgrades, as a proxy that breaks WebSockets would.
        started = js(page, START_CLIENT, f"ws://127.0.0.1:{node.port}/blocked", "fallback",
                     {"sseUrl": node.url + "/sse", "backoffBase": 50, "backoffCap": 100})
        assert started["transport"] == "sse"
        node.publish("fallback", "over SSE")
        assert wait_for_titles(page, 1) == ["over SSE"]


def test_a_native_event_source_receives_and_resumes_with_last_event_id(page):
    with running_cluster(2, "--shutdown-grace", "1") as (near, far):
        page.get(near.url + "/health")
        js(page, """
            window.events = [];
            window.source = new EventSource('/sse?channel=stream');
            source.onmessage = (event) => window.events.push({ data: JSON.parse(event.data), id: event.lastEventId });
            await new Promise((resolve) => source.addEventListener('subscribed', resolve));
            return true;
        """)
        far.publish("stream", "e1")
        js(page, "await until(() => window.events.length >= 1, 'e1'); return true;")
        near.stop()
        for number in (2, 3):
            far.publish("stream", f"e{number}")
        near.start()
        # EventSource reconnects by itself (retry: 1000 ms), sending Last-Event-ID.
        js(page, "await until(() => window.events.length >= 3, 'the replay', 20000); return true;")
        far.publish("stream", "e4")
        got = js(page, "await until(() => window.events.length >= 4, 'e4'); return window.events;")
        assert [event["data"]["title"] for event in got] == ["e1", "e2", "e3", "e4"]
        assert all(event["id"].startswith("stream~") for event in got)
        js(page, "window.source.close(); return true;")


def console_ready(driver):
    WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "state").text == "connected")


def feed_titles(driver):
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#feed li.notification .title")]


def test_the_console_link_subscribes_and_shows_a_published_notification(page):
    with running_node() as node:
        page.get(node.url + "/console?subscribe=news,orders")
        console_ready(page)
        chips = [chip.get_attribute("data-channel") for chip in page.find_elements(By.CSS_SELECTOR, ".chip")]
        assert chips == ["news", "orders"]
        wait_until("both subscriptions", lambda: http("GET", node.url + "/api/channels")[1]["total"] == 2)
        node.publish("orders", "Order 42 shipped", body="to Ada")
        WebDriverWait(page, 15).until(lambda d: "Order 42 shipped" in feed_titles(d))
        # Live figures from /api/stats.
        WebDriverWait(page, 15).until(lambda d: d.find_element(By.ID, "f-nodes").text == "1")
        WebDriverWait(page, 15).until(lambda d: d.find_element(By.ID, "f-channels").text == "2")
        WebDriverWait(page, 15).until(lambda d: d.find_element(By.ID, "f-publish-rate").text != "–")
        os.makedirs(REPORTS, exist_ok=True)
        page.save_screenshot(os.path.join(REPORTS, "console.png"))


def test_the_console_asks_for_the_api_key_and_publishes_only_with_the_right_one(page):
    with running_node("--api-key", "right-key") as node:
        page.get(node.url + "/console?subscribe=secured")
        console_ready(page)
        WebDriverWait(page, 15).until(seen.visibility_of_element_located((By.ID, "auth")))
        wait_until("the console's subscription", lambda: http(
            "GET", node.url + "/api/channels", headers={"Authorization": "Bearer right-key"})[1]["total"] == 1)

        def publish(title):
            page.find_element(By.ID, "publish-channel").clear()
            page.find_element(By.ID, "publish-channel").send_keys("secured")
            page.find_element(By.ID, "publish-title").clear()
            page.find_element(By.ID, "publish-title").send_keys(title)
            page.find_element(By.CSS_SELECTOR, "#publish-form button").click()

        def use_key(key):
            field = page.find_element(By.ID, "api-key")
            field.clear()
            field.send_keys(key)
            page.find_element(By.CSS_SELECTOR, "#auth-form button").click()

        use_key("wrong-key")
        publish("should not go out")
        WebDriverWait(page, 15).until(lambda d: "Not published (401" in d.find_element(By.ID, "publish-message").text)
        assert "invalid API key" in page.find_element(By.ID, "publish-message").text

        use_key("right-key")
        publish("with the key")
        WebDriverWait(page, 15).until(lambda d: d.find_element(By.ID, "publish-message").text.startswith("Published"))
        WebDriverWait(page, 15).until(lambda d: "with the key" in feed_titles(d))
        assert "should not go out" not in feed_titles(page)
        # The key lives in this tab's session storage, never in the page.
        assert js(page, "return window.sessionStorage.getItem('herald.apiKey');") == "right-key"
        assert "right-key" not in page.page_source


def hs256_token(secret, subject, seconds=300):
    """A connection token as a backend would mint it (HS256, `sub`, `exp`)."""
    import base64
    import hashlib
    import hmac
    import json
    import time

    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()

    signing = part({"alg": "HS256", "typ": "JWT"}) + "." + part({"sub": subject, "exp": int(time.time()) + seconds})
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def test_the_console_asks_for_a_token_when_the_node_requires_one_and_connects_with_it(page):
    secret = "browser-test-secret-long-enough-for-hs256"
    with running_node("--jwt-secret", secret) as node:
        page.get(node.url + "/console?subscribe=news")
        # Refused without a token: the console says why and asks for one.
        WebDriverWait(page, 15).until(seen.visibility_of_element_located((By.ID, "auth")))
        WebDriverWait(page, 15).until(lambda d: "Enter a token" in d.find_element(By.ID, "auth-message").text)
        assert http("GET", node.url + "/api/channels")[1]["total"] == 0
        field = page.find_element(By.ID, "token")
        field.send_keys(hs256_token(secret, "console-user"))
        page.find_element(By.CSS_SELECTOR, "#auth-form button").click()
        console_ready(page)
        wait_until("the console's subscription", lambda: http("GET", node.url + "/api/channels")[1]["total"] == 1)
        node.publish("news", "seen with a token")
        WebDriverWait(page, 15).until(lambda d: "seen with a token" in feed_titles(d))


def test_herald_js_over_sse_comes_back_with_a_fresh_token_when_its_token_expires(page):
    secret = "browser-test-secret-long-enough-for-hs256"
    with running_node("--jwt-secret", secret) as node:
        page.get(node.url + "/health")
        # The first token lives two seconds; the stream must end at its exp (an SSE stream
        # enforces it like a WebSocket), and herald.js must come back with the next one.
        tokens = [hs256_token(secret, "ada", seconds=2), hs256_token(secret, "ada", seconds=300)]
        js(page, """
            const { Herald } = await import('/herald.js');
            window.got = [];
            window.errors = [];
            window.tokenCalls = 0;
            window.herald = new Herald(args[0], {
                transport: 'sse', backoffBase: 50, backoffCap: 200,
                getToken: async () => args[1][Math.min(window.tokenCalls++, args[1].length - 1)],
            });
            herald.on('error', (error) => window.errors.push(error));
            window.subscribedCount = 0;
            herald.on('subscribed', () => { window.subscribedCount += 1; });
            herald.subscribe('news', (notification) => window.got.push(notification));
            await until(() => window.subscribedCount >= 1, 'the first subscribed');
            return true;
        """, node.ws, tokens)
        node.publish("news", "before expiry")
        assert wait_for_titles(page, 1) == ["before expiry"]
        js(page, "await until(() => window.tokenCalls >= 2 && window.subscribedCount >= 2, 'a reconnect with a fresh token', 15000); return true;")
        node.publish("news", "after expiry")
        assert wait_for_titles(page, 2) == ["before expiry", "after expiry"]
        assert js(page, "return window.herald.state;") == "connected"
        # Told once why the stream ended, as a WebSocket client is before its close 4002.
        assert [error["code"] for error in js(page, "return window.errors;")] == ["token_expired"]



def test_herald_js_with_only_a_session_cookie_rides_out_a_backend_that_goes_away(page, tmp_path):
    # The connect hook knows the browser by its cookie alone; chat: asks the subscribe hook.
    def answer(hook, body):
        if hook == "connect":
            cookie = body.get("headers", {}).get("Cookie", "")
            return {"result": {"user": "ada"}} if "session=good" in cookie else {"error": {"code": 4403, "message": "who?"}}
        return {"result": {}}

    config = tmp_path / "herald.yaml"
    config.write_text("namespaces:\n  chat:\n    subscribe_hook: true\n")
    with running_hook_backend(answer) as backend, running_node(
            "--config", str(config), "--connect-hook-url", backend.url("connect"),
            "--subscribe-hook-url", backend.url("subscribe"), "--hook-timeout", "0.5") as node:
        page.get(node.url + "/health")
        page.add_cookie({"name": "session", "value": "good", "path": "/"})
        started = js(page, START_CLIENT, node.ws, "chat:1", {"backoffBase": 100, "backoffCap": 500})
        assert started["state"] == "connected"
        assert any(hook == "connect" and "session=good" in body["headers"].get("Cookie", "") for hook, body in backend.calls)
        node.publish("chat:1", "hello ada")
        assert wait_for_titles(page, 1) == ["hello ada"]

        # The backend goes away: a new subscribe is answered temporarily_unavailable, and
        # herald.js sends it again by itself until the backend is back.
        backend.stop()
        js(page, """
window.errors = [];
herald.on('error', (error) => window.errors.push(error));
window.second = new Promise((resolve) => herald.on('subscribed', (m) => { if (m.channel === 'chat:2') resolve(m); }));
herald.subscribe('chat:2', (notification) => window.got.push(notification));
await until(() => window.errors.some((e) => e.code === 'temporarily_unavailable' && e.channel === 'chat:2'), 'the retryable error');
return true;
""")
        backend.start()
        js(page, "await window.second; return true;")
        node.publish("chat:2", "back")
        assert wait_for_titles(page, 2) == ["hello ada", "back"]

        # A connection the connect hook cannot judge is closed with 4503 and comes back by itself.
        backend.stop()
        js(page, """
const { Herald } = await import('/herald.js');
window.late = new Herald(args[0], { backoffBase: 100, backoffCap: 500 });
window.lateStates = [];
late.on('state', (state) => window.lateStates.push(state));
await until(() => window.lateStates.filter((s) => s === 'connecting').length >= 2, 'a second attempt');
return true;
""", node.ws)
        backend.start()
        js(page, "await until(() => window.late.state === 'connected', 'the late client to connect'); late.close(); return true;")


def test_herald_js_acknowledges_what_it_handled_and_another_tab_resumes_after_it(page):
    secret = "browser-test-secret-long-enough-for-hs256"
    with running_node("--jwt-secret", secret, "--durable", "true") as node:
        page.get(node.url + "/health")
        token = hs256_token(secret, "ada")
        js(page, START_CLIENT, node.ws, "inbox", {"token": token, "ackDelay": 50})
        for number in range(1, 4):
            node.publish("inbox", f"n{number}")
        assert wait_for_titles(page, 3) == ["n1", "n2", "n3"]
        # Auto-ack: once the handlers ran, the user's position is the third notification.
        wait_until("ada's acknowledged position", lambda: http("GET", node.url + "/api/users/ada/positions")[1]["positions"].get("inbox", {}).get("offset") == 3)
        js(page, "window.herald.close(); return true;")
        for number in range(4, 6):
            node.publish("inbox", f"n{number}")
        # Another tab of the same user, without `since`: it resumes after the ack.
        resumed = js(page, """
            const { Herald } = await import('/herald.js');
            window.second = [];
            window.secondRecovery = null;
            const herald = new Herald(args[0], { token: args[1] });
            herald.on('recovery', (report) => { window.secondRecovery = report; });
            herald.subscribe('inbox', (notification) => window.second.push(notification.title));
            await until(() => window.second.length >= 2 && window.secondRecovery, 'the resumed notifications');
            return { titles: window.second, recovery: window.secondRecovery };
        """, node.ws, token)
        assert resumed["titles"] == ["n4", "n5"]
        assert resumed["recovery"]["recovered"] is True
        assert resumed["recovery"]["unread"] == 2


def test_herald_js_behind_a_stalled_link_gets_the_newest_per_key_and_does_not_recover_the_rest(page, tmp_path):
    config = tmp_path / "herald.yaml"
    config.write_text("namespaces:\n  ticker:\n    slow_consumer: latest\n")
    with running_node("--config", str(config), "--send-queue-bytes", "16384", "--socket-send-buffer", "8192") as node, \
            running_proxy(node.port) as proxy:
        page.get(node.url + "/health")
        js(page, START_CLIENT, f"ws://127.0.0.1:{proxy.port}/ws", "ticker:fx", {"backoffBase": 100})
        js(page, "window.subscribedCount = 0; herald.on('subscribed', () => { window.subscribedCount += 1; }); return true;")
        keys = ["EUR", "GBP", "JPY"]
        body = "x" * 1024
        newest, published = {}, 0

        def lagging():
            status, text = http("GET", node.url + "/metrics")
            return 'herald_slow_consumers_total{policy="latest"} 1' in str(text)

        proxy.pause()
        rounds_after_lag = None
        while rounds_after_lag is None or rounds_after_lag < 10:
            assert published < 6000, "the stalled link never made the node see a slow consumer"
            for key in keys:
                answer = node.publish("ticker:fx", f"{key} {published}", body=body, conflate_key=key)
                newest[key] = answer["offset"]
                published += 1
            if rounds_after_lag is not None:
                rounds_after_lag += 1
            elif published % 60 == 0 and lagging():
                rounds_after_lag = 0
        proxy.resume()
        js(page, """
            await until(() => args[0].every(([key, offset]) =>
                window.got.some((n) => n.conflate_key === key && n.offset === offset)), 'the newest of every key', 20000);
            return true;
        """, list(newest.items()))
        got = js(page, "return window.got.map((n) => ({ key: n.conflate_key, offset: n.offset }));")
        assert len(got) < published, "older notifications were replaced, not queued"
        for key in keys:
            offsets = [n["offset"] for n in got if n["key"] == key]
            assert offsets == sorted(set(offsets)) and offsets[-1] == newest[key]
        # The skipped offsets are not a gap to recover: no resubscribe, no recovery, and the
        # client's position is the newest offset it was sent.
        assert js(page, "return window.subscribedCount;") == 0
        assert js(page, "return window.recoveries;") == []
        assert js(page, "return window.herald.position('ticker:fx').offset;") == max(newest.values())
