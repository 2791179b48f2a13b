#!/usr/bin/env python3
"""Runs a test command with a deadline that fails the run loudly instead of hiding a hang.

    run-bounded.py --timeout SECONDS [--stacks FILE] -- COMMAND [ARGS...]

The command's output is passed through line by line. swift-testing's console lines are read
as they go by (`Test NAME started.`, `Test NAME passed|failed after …`, the closing
`Test run with … tests … after …`), so that when the deadline passes the message names the
tests that had not finished - or says that every test finished and the process still did
not exit, which is a leak (a task, event-loop group or child process outliving its test).
Before the process group is killed, the threads of every process still running are dumped
with gdb (when installed) into --stacks, to find what kept it alive.

Exit status: the command's own, or 124 on timeout.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

STARTED = re.compile(r"Test (.+?) started\.$")
FINISHED = re.compile(r"Test (.+?) (?:passed|failed|skipped)(?: after [0-9.]+ seconds)?(?: with .*)?\.?$")
CLOSING = re.compile(r"Test run with \d+ tests?.* (?:passed|failed) after ")


def descendants(pid):
    """Every process below pid (children first found through /proc)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    found.append(int(entry))
                    frontier.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def dump_stacks(root, path):
    gdb = shutil.which("gdb")
    with open(path, "w") as out:
        for pid in [root] + descendants(root):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                    command = cmd.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            out.write(f"==== pid {pid}: {command}\n")
            out.flush()
            if shutil.which("ss"):
                # Which connections the process holds tells what a stuck test waits on.
                sockets = subprocess.run(["ss", "-tanpe"], capture_output=True, text=True).stdout
                out.write("".join(line + "\n" for line in sockets.splitlines() if f"pid={pid}," in line))
                out.flush()
            if gdb:
                subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt 20"],
                               stdout=out, stderr=subprocess.STDOUT, timeout=60)
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--stacks", default="test-hang-stacks.txt")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, bufsize=1, text=True, errors="replace")
    running, finished = {}, set()
    closed = threading.Event()

    def pump():
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            text = line.rstrip("\n")
            if " Test case " in text:
                # Argument cases of a parameterized test report their start only.
                continue
            if CLOSING.search(text):
                closed.set()
            elif match := FINISHED.search(text):
                running.pop(match.group(1), None)
                finished.add(match.group(1))
            elif match := STARTED.search(text):
                running[match.group(1)] = time.monotonic()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        status = process.wait(timeout=args.timeout)
        reader.join(timeout=5)
        return status
    except subprocess.TimeoutExpired:
        pass
    now = time.monotonic()
    print(f"\n*** TIMEOUT: the test run did not finish within {args.timeout:.0f} s.", flush=True)
    if running:
        print("*** Tests that had started and not finished:")
        for name, started in sorted(running.items(), key=lambda item: item[1]):
            print(f"***   {name}   (running for {now - started:.0f} s)")
    elif closed.is_set():
        print("*** Every test finished and the closing line was printed, but the process did not exit.")
    else:
        print(f"*** All {len(finished)} tests that started have finished, but the run never printed its "
              "closing line: something outlived its test (a task, event-loop group, child process).")
    print(f"*** Thread dump: {dump_stacks(process.pid, args.stacks)}", flush=True)
    # swift test runs the test bundle in a process group of its own: kill every descendant.
    for pid in descendants(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return 124


if __name__ == "__main__":
    sys.exit(main())
