"""GET /metrics read back with the Prometheus text parser (prometheus-client) after traffic
whose counts are known, against real `herald serve` processes and a real redis-server.

Counters are compared before and after the traffic, so nothing depends on what a node did
while it started.
"""
import contextlib
import json
import subprocess
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from conftest import (
    http, redis_cli, running_cluster, running_hook_backend, running_node, running_postgres, running_redis, running_redis_cluster,
    wait_until)


def scrape(node, headers=None):
    """Every sample of the node's /metrics as {(name, frozenset(labels)): value}."""
    request = urllib.request.Request(node.url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("herald_"), family.name
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def total(samples, name, **labels):
    """The sum over every series of `name` carrying at least `labels` (whatever its others)."""
    wanted = set(labels.items())
    return sum(count for (sample, series), count in samples.items() if sample == name and wanted <= series)


class Client:
    """A WebSocket client speaking Herald's JSON, reading with a deadline."""

    def __init__(self, node, path="/ws"):
        self.socket = connect(node.url.replace("http", "ws") + path, open_timeout=10).__enter__()
        self.welcome = self.next()
        assert self.welcome["type"] == "welcome", self.welcome

    def send(self, **message):
        self.socket.send(json.dumps(message))

    def next(self, type=None, timeout=10):
        while True:
            message = json.loads(self.socket.recv(timeout=timeout))
            if message["type"] == "ping":
                continue
            if type is None or message["type"] == type:
                return message

    def subscribe(self, channel, since=None):
        self.send(type="subscribe", channel=channel, **({"since": since} if since else {}))
        return self.next("subscribed")

    def close(self):
        with contextlib.suppress(Exception):
            self.socket.close()


@contextlib.contextmanager
def clients(node, count, channel):
    opened = []
    try:
        for _ in range(count):
            client = Client(node)
            opened.append(client)
            client.subscribe(channel)
        yield opened
    finally:
        for client in opened:
            client.close()


def test_the_counters_match_traffic_whose_size_is_known():
    with running_cluster(1, "--ping-interval", "1") as (node,):
        before = scrape(node)
        with clients(node, 3, "metered") as subscribers:
            for number in range(5):
                node.publish("metered", f"n{number}")
            for subscriber in subscribers:
                titles = [subscriber.next("notification")["title"] for _ in range(5)]
                assert titles == [f"n{number}" for number in range(5)]
            # One idempotent publish and its retry: one publication, one duplicate.
            for _ in range(2):
                status, _ = http("POST", node.url + "/api/notify/metered", {"title": "once"}, {"Idempotency-Key": "k-1"})
                assert status == 200
            for subscriber in subscribers:
                assert subscriber.next("notification")["title"] == "once"
            assert http("POST", node.url + "/api/notify/bad%20name", {})[0] == 400
            during = scrape(node)
            assert value(during, "herald_connections", transport="websocket") == 3
            assert value(during, "herald_subscriptions") == 3
            assert value(during, "herald_channels") == 1
            position = subscribers[0].subscribe("metered")  # answered again, nothing new

        # A client back with the position of the 3rd notification recovers 3; one with a
        # foreign epoch cannot.
        returning = Client(node)
        third = int(position["offset"]) - 3
        recovered = returning.subscribe("metered", since={"offset": third, "epoch": position["epoch"]})
        assert recovered["recovered"] is True and recovered["replayed"] == 3
        stranger = Client(node)
        assert stranger.subscribe("metered", since={"offset": 1, "epoch": "gone"})["recovered"] is False
        returning.close()
        stranger.close()

        wait_until("every client to be gone", lambda: value(scrape(node), "herald_connections", transport="websocket") == 0)
        after = scrape(node)
        assert delta(before, after, "herald_connects_total", transport="websocket") == 5
        assert delta(before, after, "herald_disconnects_total", transport="websocket", reason="normal") == 5
        assert delta(before, after, "herald_publications_total", source="rest") == 6
        assert delta(before, after, "herald_idempotent_duplicates_total") == 1
        # 6 publications × 3 subscribers, then the 3 replayed are not live deliveries.
        assert delta(before, after, "herald_deliveries_total") == 18
        assert delta(before, after, "herald_history_recoveries_total", outcome="recovered") == 1
        assert delta(before, after, "herald_history_recoveries_total", outcome="not_recovered") == 1
        assert delta(before, after, "herald_http_requests_total", route="/api/notify/{channel}", status="2xx") == 7
        assert delta(before, after, "herald_http_requests_total", route="/api/notify/{channel}", status="4xx") == 1
        assert value(after, "herald_subscriptions") == 0
        assert value(after, "herald_channels") == 0
        assert value(after, "herald_broker_up") == 1
        # One latency sample per publication and event loop that wrote it.
        samples = delta(before, after, "herald_delivery_latency_seconds_count")
        assert 6 <= samples <= 12, samples
        assert delta(before, after, "herald_delivery_latency_seconds_sum") > 0
        buckets = sorted(
            (float(dict(labels)["le"]), count) for (name, labels), count in after.items()
            if name == "herald_delivery_latency_seconds_bucket")
        assert [count for _, count in buckets] == sorted(count for _, count in buckets)
        # Every publish ran one script in Redis; the two subscribes with `since` read the history.
        # One Redis: every round trip is labelled with its host:port.
        redis_series = {dict(series)["shard"] for (sample, series) in after
                        if sample == "herald_redis_command_duration_seconds_count" and "shard" in dict(series)}
        assert len(redis_series) == 1 and redis_series.pop().startswith("127.0.0.1:")
        duration = "herald_redis_command_duration_seconds_count"
        assert total(after, duration, operation="publish") - total(before, duration, operation="publish") == 7
        assert total(after, duration, operation="history") - total(before, duration, operation="history") >= 2


def test_disconnect_reasons_and_redis_reconnects_are_counted():
    with running_cluster(1, "--ping-interval", "0.2", "--ping-timeout", "0.6", "--rate-limit", "1", "--rate-burst", "1") as (node,):
        before = scrape(node)
        # Binary frames are a protocol error (1003).
        binary = Client(node)
        binary.socket.send(b"\x00\x01")
        wait_until("the binary client to be closed", lambda: delta(
            before, scrape(node), "herald_disconnects_total", transport="websocket", reason="protocol_error") == 1)
        # Flooding past the rate limit closes with 1008.
        flood = Client(node)
        with contextlib.suppress(Exception):
            for _ in range(60):
                flood.send(type="ping")
        wait_until("the flooding client to be closed", lambda: delta(
            before, scrape(node), "herald_disconnects_total", transport="websocket", reason="rate_limit") == 1)
        # A client that never answers is timed out (its library answers WebSocket pings,
        # not Herald's JSON ones — and this one says nothing at all).
        silent = Client(node)
        wait_until("the silent client to time out", lambda: delta(
            before, scrape(node), "herald_disconnects_total", transport="websocket", reason="heartbeat_timeout") == 1)
        for client in (binary, flood, silent):
            client.close()
        # Redis drops the pub/sub connection (in pub/sub mode while a channel is wanted): the
        # node reconnects, and counts it.
        with clients(node, 1, "kept"):
            port = urllib.parse.urlparse(node.arguments[node.arguments.index("--redis-url") + 1]).port
            subprocess.run(["redis-cli", "-p", str(port), "CLIENT", "KILL", "TYPE", "pubsub"], check=True, capture_output=True)
            wait_until("the subscribe link to come back", lambda: delta(
                before, scrape(node), "herald_redis_reconnects_total", connection="subscribe", shard=f"127.0.0.1:{port}") == 1)
            wait_until("the broker to be up again", lambda: value(scrape(node), "herald_broker_up") == 1)


def test_server_disconnects_and_sse_streams_are_counted_per_transport():
    secret = "metrics-test-secret-long-enough-for-hs256"
    with running_node("--jwt-secret", secret, "--allow-anonymous", "true") as node:
        from test_browser import hs256_token
        before = scrape(node)
        user = Client(node, "/ws?token=" + hs256_token(secret, "ada"))
        status, body = http("POST", node.url + "/api/users/ada/disconnect")
        assert status == 200 and body["disconnected"] == 1
        wait_until("Ada to be disconnected", lambda: delta(
            before, scrape(node), "herald_disconnects_total", transport="websocket", reason="server_disconnect") == 1)
        user.close()
        request = urllib.request.Request(node.url + "/sse?channel=news", headers={"Accept": "text/event-stream"})
        with urllib.request.urlopen(request, timeout=10) as stream:
            assert stream.readline().startswith(b"retry:")
            assert value(scrape(node), "herald_connections", transport="sse") == 1
        after = scrape(node)
        assert delta(before, after, "herald_connects_total", transport="sse") == 1
        assert delta(before, after, "herald_connects_total", transport="websocket") == 1


def test_backend_hook_calls_are_counted_by_hook_and_outcome_and_timed(tmp_path):
    def answer(hook, body):
        if hook == "subscribe" and body["channel"] == "chat:2":
            return {"error": {"message": "not a member"}}
        return {"result": {"user": "ada"}} if hook == "connect" else {"result": {}}

    config = tmp_path / "herald.yaml"
    config.write_text("namespaces:\n  chat:\n    subscribe_hook: true\n")
    with running_hook_backend(answer) as backend, running_node(
            "--config", str(config), "--connect-hook-url", backend.url("connect"),
            "--subscribe-hook-url", backend.url("subscribe"), "--hook-timeout", "0.5") as node:
        before = scrape(node)
        client = Client(node)
        client.subscribe("chat:1")
        client.send(type="subscribe", channel="chat:2")
        assert client.next("error")["code"] == "forbidden"
        backend.stop()
        client.send(type="subscribe", channel="chat:3")
        assert client.next("error")["code"] == "temporarily_unavailable"
        client.close()
        after = scrape(node)
        for hook, outcome, count in [("connect", "allowed", 1), ("subscribe", "allowed", 1), ("subscribe", "refused", 1),
                                     ("subscribe", "unavailable", 1), ("connect", "refused", 0)]:
            assert delta(before, after, "herald_hook_calls_total", hook=hook, outcome=outcome) == count, (hook, outcome)
        assert delta(before, after, "herald_hook_duration_seconds_count", hook="subscribe") == 3


def webhook_events(samples, event, outcome):
    """herald_webhook_events_total{name=event, outcome=outcome}: its `name` label would clash
    with value()'s own parameter."""
    return samples.get(("herald_webhook_events_total", frozenset({"name": event, "outcome": outcome}.items())), 0.0)


def test_webhook_events_are_counted_by_name_and_outcome_with_the_queue_gauges():
    with running_hook_backend(lambda hook, body: {}) as receiver, running_node(
            "--webhook-url", receiver.url("webhook"), "--webhook-secret", "s", "--webhook-vacate-delay", "0.2") as node:
        before = scrape(node)
        sent = lambda event: webhook_events(scrape(node), event, "sent") - webhook_events(before, event, "sent")
        with clients(node, 2, "lobby"):
            wait_until("channel_occupied to be sent", lambda: sent("channel_occupied") == 1)
        wait_until("channel_vacated to be sent", lambda: sent("channel_vacated") == 1)
        after = scrape(node)
        assert webhook_events(after, "channel_occupied", "dropped") == webhook_events(before, "channel_occupied", "dropped")
        assert sent("channel_occupied") == 1
        assert delta(before, after, "herald_webhook_requests_total", outcome="ok") >= 1
        assert [event["name"] for hook, body in receiver.calls for event in body["events"]] == [
            "channel_occupied", "channel_vacated"]
        wait_until("the queue gauge to read 0", lambda: value(scrape(node), "herald_webhook_queue_depth") == 0)
        assert value(after, "herald_webhook_oldest_pending_seconds") >= 0


def test_outbox_rows_are_counted_and_the_lag_gauge_falls_back_to_zero():
    with running_postgres() as (url, psql), running_node(
            "--outbox-url", url, "--outbox-create", "true", "--outbox-poll", "0.2") as node:
        wait_until("the outbox table", lambda: psql("SELECT to_regclass('herald_outbox_failed')") == ["herald_outbox_failed"])
        before = scrape(node)
        with clients(node, 1, "ledger") as (client,):
            psql("""INSERT INTO herald_outbox (channel, payload) VALUES
                    ('ledger', '{"title":"one"}'), ('ledger', '{"title":"two"}'), ('ledger', '"not an object"')""")
            assert [client.next("notification")["title"] for _ in range(2)] == ["one", "two"]
        wait_until("the rows to be counted", lambda: delta(
            before, scrape(node), "herald_outbox_rows_total", outcome="failed") == 1)
        after = scrape(node)
        assert delta(before, after, "herald_outbox_rows_total", outcome="published") == 2
        assert psql("SELECT reason FROM herald_outbox_failed") == ["invalid_json: body must be a JSON object"]
        wait_until("the lag gauge to read 0", lambda: value(scrape(node), "herald_outbox_lag_seconds") == 0)


def test_metrics_need_the_api_key_when_one_is_set_unless_made_public():
    with running_node("--api-key", "scrape-key") as node:
        status, body = http("GET", node.url + "/metrics")
        assert status == 401 and body["code"] == "unauthorized"
        assert value(scrape(node, {"Authorization": "Bearer scrape-key"}), "herald_broker_up") == 1
    with running_node("--api-key", "scrape-key", "--metrics-public", "true") as node:
        assert value(scrape(node), "herald_broker_up") == 1
    with running_node() as node:
        assert value(scrape(node), "herald_broker_up") == 1


def test_the_grafana_dashboard_queries_only_metrics_a_node_exports():
    import os
    import re

    from conftest import ROOT
    dashboard = json.load(open(os.path.join(ROOT, "deploy", "grafana", "herald-dashboard.json")))
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"herald_[a-z_]+", target["expr"])}
    with running_cluster(1) as (node,):
        exported = {name for name, _ in scrape(node)}
    assert queried and queried <= exported, sorted(queried - exported)


def test_each_redis_shard_is_reported_and_a_lost_one_reads_zero():
    with running_redis() as first, running_redis() as second:
        with running_node("--redis-url", f"{first},{second}") as node:
            shard = {url: f"127.0.0.1:{urllib.parse.urlparse(url).port}" for url in (first, second)}
            wait_until("both shards to read up", lambda: all(
                value(scrape(node), "herald_redis_shard_up", shard=shard[url]) == 1 for url in (first, second)))
            assert value(scrape(node), "herald_broker_up") == 1
            subprocess.run(["redis-cli", "-p", str(urllib.parse.urlparse(second).port), "SHUTDOWN", "NOSAVE"],
                           capture_output=True)
            wait_until("the lost shard to read 0", lambda: value(
                scrape(node), "herald_redis_shard_up", shard=shard[second]) == 0)
            samples = scrape(node)
            assert value(samples, "herald_redis_shard_up", shard=shard[first]) == 1
            assert value(samples, "herald_broker_up") == 0
            status, body = http("GET", node.url + "/health")
            assert status == 200 and body["status"] == "degraded" and shard[second] in body["brokerStatus"], body


def test_a_redis_cluster_reports_each_master_the_map_age_and_followed_failovers():
    with running_redis_cluster() as ports:
        with running_node("--redis-url", f"redis+cluster://127.0.0.1:{ports[0]}") as node:
            masters = [port for port in ports if redis_cli(port, "ROLE").startswith("master")]
            assert len(masters) == 3
            wait_until("every master to read up", lambda: all(
                value(scrape(node), "herald_redis_shard_up", shard=f"127.0.0.1:{port}") == 1 for port in masters))
            samples = scrape(node)
            assert value(samples, "herald_broker_up") == 1
            # The slot map is read every second.
            assert 0 <= value(samples, "herald_redis_topology_age_seconds") < 3
            before = value(samples, "herald_redis_failovers_total")
            replica = next(port for port in ports if f"master_port:{masters[0]}" in redis_cli(port, "INFO", "replication"))
            wait_until("the replica to sync", lambda: "master_link_status:up" in redis_cli(replica, "INFO", "replication"))
            redis_cli(replica, "CLUSTER", "FAILOVER")
            wait_until("the node to follow the failover", lambda: value(
                scrape(node), "herald_redis_shard_up", shard=f"127.0.0.1:{replica}") == 1, timeout=20)
            samples = scrape(node)
            assert value(samples, "herald_redis_failovers_total") > before
            # Round trips are counted per master: publishing reaches each channel's own.
            for channel in ("news", "chat:42", "user:ada"):
                assert http("POST", f"{node.url}/api/notify/{channel}", {"title": "hi"})[0] == 200
            samples = scrape(node)
            masters_now = {dict(series)["shard"] for (sample, series), count in samples.items()
                           if sample == "herald_redis_command_duration_seconds_count"
                           and dict(series).get("operation") == "publish" and count > 0}
            assert len(masters_now) == 3, masters_now
            # The old master serves no slot now: its series is gone, not stuck at 1 or 0.
            assert ("herald_redis_shard_up", frozenset({("shard", f"127.0.0.1:{masters[0]}")})) not in samples


class PausedClient(Client):
    """A client whose reader stops once the queue of received messages holds one: a real socket
    with a small receive buffer, so the node's queue for it fills after a few kilobytes."""

    def __init__(self, node):
        import socket as sockets
        raw = sockets.socket(sockets.AF_INET, sockets.SOCK_STREAM)
        raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        host, port = urllib.parse.urlsplit(node.url).netloc.split(":")
        raw.connect((host, int(port)))
        self.socket = connect(node.url.replace("http", "ws") + "/ws", sock=raw, open_timeout=10, max_queue=1).__enter__()
        self.welcome = self.next()


def test_slow_consumers_are_counted_by_policy_with_their_catch_ups_and_conflations(tmp_path):
    config = tmp_path / "herald.yaml"
    config.write_text("namespaces:\n  ticker:\n    slow_consumer: latest\n")
    with running_node(
        "--config", str(config), "--send-queue-bytes", "16384", "--socket-send-buffer", "8192", "--history-size", "5000"
    ) as node:
        before = scrape(node)
        catching_up, conflating = PausedClient(node), PausedClient(node)
        catching_up.subscribe("feed")
        conflating.subscribe("ticker:eur")
        body = "x" * 1024
        published = {"feed": 0, "ticker:eur": 0}

        def lagging(policy):
            return delta(before, scrape(node), "herald_slow_consumers_total", policy=policy) >= 1

        for channel, policy in (("feed", "catch_up"), ("ticker:eur", "latest")):
            while not lagging(policy):
                assert published[channel] < 4000, f"{channel} never lagged"
                for _ in range(50):
                    http("POST", f"{node.url}/api/notify/{channel}", {"title": str(published[channel]), "body": body, "conflate_key": "EUR"})
                    published[channel] += 1
        # Reading again: every feed notification once and in order; the ticker's newest.
        titles = [catching_up.next("notification", timeout=20)["title"] for _ in range(published["feed"])]
        assert titles == [str(number) for number in range(published["feed"])]
        newest = str(published["ticker:eur"] - 1)
        seen = []
        while not seen or seen[-1] != newest:
            seen.append(conflating.next("notification", timeout=20)["title"])
        assert len(seen) < published["ticker:eur"]
        after = scrape(node)
        assert delta(before, after, "herald_catch_ups_total", outcome="recovered") >= 1
        assert delta(before, after, "herald_conflated_total") >= 1
        assert delta(before, after, "herald_slow_consumers_total", policy="disconnect") == 0
        assert total(after, "herald_disconnects_total", reason="slow_consumer") == total(before, "herald_disconnects_total", reason="slow_consumer")
        catching_up.close()
        conflating.close()
