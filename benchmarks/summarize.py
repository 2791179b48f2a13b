#!/usr/bin/env python3
"""Turns benchmarks/run's JSON results into summary.md (figures and Herald/Nchan ratios)
and latency.png (publish→deliver latency by percentile)."""
import json
import pathlib
import sys

SYSTEMS = ["herald-memory", "herald-redis", "nchan-memory", "nchan-redis"]
# Herald variants benchmarks/run knows: one thread, history off, publishes through the router.
VARIANTS = ["", "-1t", "-nohist", "-1t-nohist", "-router", "-1t-router"]
SCENARIOS = ["fanout", "fanout200", "channels", "connect", "connectown", "batch", "storm"]
# Scenarios with deliveries (connect has none).
DELIVERING = ["fanout", "fanout200", "channels", "batch"]


def load(directory):
    """Results by (system, scenario); SYSTEMS becomes every system found, in a fixed order."""
    results = {}
    found = []
    for system in [f"herald-{store}{variant}" for store in ("memory", "redis") for variant in VARIANTS] + ["nchan-memory", "nchan-redis"]:
        for scenario in SCENARIOS:
            path = directory / f"{system}-{scenario}.json"
            if path.exists():
                results[(system, scenario)] = json.loads(path.read_text())
                if system not in found:
                    found.append(system)
    SYSTEMS[:] = found
    return results


def fmt(value, digits=1):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(herald, nchan):
    if herald is None or nchan in (None, 0):
        return "–"
    return f"{herald / nchan:.2f}"


def cpu_per_connect(r):
    """Server CPU (every server process, Redis included) per connection of a connect run."""
    servers = r.get("servers") or []
    if not servers or not r.get("subscribers"):
        return None
    return sum(server["cpuSeconds"] for server in servers) / r["subscribers"] * 1e6


def table(results):
    lines = []
    for scenario in DELIVERING:
        if not any(key[1] == scenario for key in results):
            continue
        lines += [f"### {scenario}", "",
                  "| system | delivered/expected | lost | dup | deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | server CPU µs/publish |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for system in SYSTEMS:
            r = results.get((system, scenario))
            if not r:
                continue
            lat = r["latencyMillis"]
            lines.append(
                f"| {system} | {r['deliveries']}/{r['expectedDeliveries']} | {r['lost']} | {r['duplicates']} | "
                f"{fmt(r['deliveriesPerSecond'], 0)} | {fmt(lat['p50'], 2)} | {fmt(lat['p99'], 2)} | {fmt(lat['p999'], 2)} | "
                f"{fmt(r.get('serverCPUMicrosPerDelivery'), 2)} | {fmt(r.get('serverCPUMicrosPerPublish'), 1)} |")
        lines.append("")
    for scenario, title in (("connect", "idle connections, one channel"), ("connectown", "idle connections, each on its own channel")):
        rows = [(system, results[(system, scenario)]) for system in SYSTEMS if (system, scenario) in results]
        if not rows:
            continue
        lines += [f"### {scenario} ({title})", "",
                  "| system | connections | connects/s | server CPU µs per connect + subscribe | server RSS KiB per connection |",
                  "|---|---|---|---|---|"]
        for system, r in rows:
            lines.append(f"| {system} | {r['subscribers']} | {fmt(r['connectsPerSecond'], 0)} | {fmt(cpu_per_connect(r), 0)} | "
                         f"{fmt(r.get('rssKiBPerConnection'), 1)} |")
        lines.append("")
    storms = [(system, results[(system, "storm")]) for system in SYSTEMS if (system, "storm") in results]
    if storms:
        lines += ["### storm (the first node killed; its clients come back to the other)", "",
                  "| system | clients back / recovered | seconds to all recovered | lost | server CPU µs per reconnect |",
                  "|---|---|---|---|---|"]
        for system, r in storms:
            lines.append(
                f"| {system} | {r.get('reconnected')}/{r.get('recovered')} | {fmt(r.get('stormSeconds'), 2)} | {r['lost']} | "
                f"{fmt(r.get('serverCPUMicrosPerReconnect'), 0)} |")
    lines += ["", "### Herald / Nchan (lower is better for Herald, except deliveries/s)", "",
              "| pair | scenario | CPU µs/delivery | CPU µs/publish | CPU µs/connect | connects/s | p50 | p99 | KiB/conn |",
              "|---|---|---|---|---|---|---|---|---|"]
    for store in ("memory", "redis"):
        for scenario in SCENARIOS:
            h = results.get((f"herald-{store}", scenario))
            n = results.get((f"nchan-{store}", scenario))
            if not h or not n:
                continue
            lines.append(
                f"| {store} | {scenario} | {ratio(h.get('serverCPUMicrosPerDelivery'), n.get('serverCPUMicrosPerDelivery'))} | "
                f"{ratio(h.get('serverCPUMicrosPerPublish'), n.get('serverCPUMicrosPerPublish'))} | "
                f"{ratio(cpu_per_connect(h), cpu_per_connect(n)) if scenario.startswith('connect') else '–'} | "
                f"{ratio(h.get('connectsPerSecond'), n.get('connectsPerSecond')) if scenario.startswith('connect') else '–'} | "
                f"{ratio(h['latencyMillis']['p50'], n['latencyMillis']['p50']) if not scenario.startswith('connect') else '–'} | "
                f"{ratio(h['latencyMillis']['p99'], n['latencyMillis']['p99']) if not scenario.startswith('connect') else '–'} | "
                f"{ratio(h.get('rssKiBPerConnection'), n.get('rssKiBPerConnection')) if scenario.startswith('connect') else '–'} |")
    variants = [system for system in SYSTEMS if system.startswith("herald-") and system.count("-") > 1]
    if variants:
        lines += ["", "### Herald variants / Herald at its defaults (same store)", "",
                  "| variant | scenario | CPU µs/publish | p99 |", "|---|---|---|---|"]
        for system in variants:
            base = "-".join(system.split("-")[:2])
            for scenario in DELIVERING:
                v, b = results.get((system, scenario)), results.get((base, scenario))
                if v and b:
                    lines.append(
                        f"| {system} | {scenario} | {ratio(v.get('serverCPUMicrosPerPublish'), b.get('serverCPUMicrosPerPublish'))} | "
                        f"{ratio(v['latencyMillis']['p99'], b['latencyMillis']['p99'])} |")
    return "\n".join(lines) + "\n"


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return
    shown = [scenario for scenario in DELIVERING if any(key[1] == scenario for key in results)]
    figure, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4.5), squeeze=False)
    for axis, scenario in zip(axes[0], shown):
        for system in SYSTEMS:
            r = results.get((system, scenario))
            if not r or not r["latencyMillis"]["histogram"]:
                continue
            points = r["latencyMillis"]["histogram"]
            axis.plot([p[1] for p in points], [p[0] for p in points], label=system, marker=".")
        axis.set_title(f"{scenario}: publish → deliver latency")
        axis.set_xlabel("percentile")
        axis.set_ylabel("ms")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    directory = pathlib.Path(sys.argv[1])
    results = load(directory)
    summary = table(results)
    (directory / "summary.md").write_text(summary)
    print(summary)
    if "--no-plot" not in sys.argv:
        plot(results, directory / "latency.png")


if __name__ == "__main__":
    main()
