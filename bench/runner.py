#!/usr/bin/env python3
"""Runs the benchmark cases against our servers and Beast's, alternately (ours, Beast,
ours, Beast, ...), each run on a fresh server pinned to one CPU with the load generator
pinned to another, and prints the medians and the ratio ours/Beast as a Markdown table.
With --threads N, ours on one thread against ours on N threads instead (server_options::
threads), both pinned to the same CPUs (--server-cpu, a taskset list such as 0,1).
With --redis, the broadcast cases on two instances of ours joined through a redis-server
of the run's own (the sender and every other receiver on the first, the rest on the
second) against one instance with every receiver; all of them on --server-cpu.

Started by bench/run, which builds first. Any failure (a server that dies, does not
start or does not stop; a load generator that reports a wrong byte, a refused or
dropped connection, a stall, or times out) ends the run with status 1 and a message,
never with a figure.
"""

import argparse
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


class BenchFailure(Exception):
    pass


@dataclass
class Metric:
    key: str  # in the load generator's result line
    label: str
    digits: int  # decimals shown
    higher_is_better: bool


@dataclass
class Case:
    name: str
    title: str  # with {option} fields filled from the load generator's arguments
    server: str  # echo | broadcast: which server program
    args: list  # the load generator's mode and options, full run
    quick_args: list  # the same, overriding for --quick
    metrics: list
    needs_pid: bool = False


MESSAGES_PER_S = Metric("messages_per_s", "messages/s ↑", 0, True)
MB_PER_S = Metric("mb_per_s", "MB/s of payload ↑", 1, True)
P50 = Metric("p50_us", "p50 round trip, µs ↓", 1, False)
P99 = Metric("p99_us", "p99 round trip, µs ↓", 1, False)
DELIVERIES_PER_S = Metric("deliveries_per_s", "deliveries/s ↑", 0, True)
TIME_TO_LAST = Metric("time_to_last_ms", "until the last receiver has the last message, ms ↓", 1, False)
KIB_PER_CONNECTION = Metric("kib_per_connection", "KiB per idle connection ↓", 1, False)

# The load generator's CPU time over the measured part, as a fraction of it: near 1, the
# load generator, not the server, may be what limits the figures.
BUSY = "loadgen_busy"
BUSY_WARNING = 0.9

ECHO_QUICK = ["--warmup", "0.2", "--duration", "1"]
ECHO_TITLE = "echo {size}, connections × in flight: {connections} × {inflight}"
PACED_TITLE = "broadcast {size} to {connections}, paced ({window} not yet everywhere), {messages} messages"

CASES = [
    Case("echo16", ECHO_TITLE, "echo",
         ["echo", "--connections", "100", "--inflight", "10", "--size", "16"], ECHO_QUICK,
         [MESSAGES_PER_S, P99]),
    Case("echo4k", ECHO_TITLE, "echo",
         ["echo", "--connections", "100", "--inflight", "10", "--size", "4096"], ECHO_QUICK,
         [MESSAGES_PER_S, MB_PER_S, P99]),
    Case("latency", ECHO_TITLE, "echo",
         ["echo", "--connections", "1", "--inflight", "1", "--size", "16"], ECHO_QUICK,
         [P50, P99, MESSAGES_PER_S]),
    Case("bcast64", PACED_TITLE, "broadcast",
         ["broadcast", "--connections", "1000", "--size", "64", "--messages", "2000", "--window", "16"],
         ["--messages", "300"],
         [DELIVERIES_PER_S, TIME_TO_LAST]),
    Case("bcast64burst", "broadcast {size} to {connections}, burst of {messages} messages", "broadcast",
         ["broadcast", "--connections", "1000", "--size", "64", "--messages", "2000", "--window", "0"],
         ["--messages", "500"],
         [DELIVERIES_PER_S, TIME_TO_LAST]),
    Case("bcast16k", PACED_TITLE, "broadcast",
         ["broadcast", "--connections", "100", "--size", "16384", "--messages", "1000", "--window", "16"],
         ["--messages", "200"],
         [DELIVERIES_PER_S, MB_PER_S, TIME_TO_LAST]),
    Case("memory", "{connections} idle connections (echo server)", "echo",
         ["connections", "--connections", "10000"], [],
         [KIB_PER_CONNECTION], needs_pid=True),
]

# (program prefix, label, extra server arguments)
IMPLEMENTATIONS = [("ours", "ours", []), ("beast", "Beast", [])]


def merged(args, overrides):
    """`args` with each `--option value` of `overrides` replacing or adding its own."""
    out = list(args)
    for i in range(0, len(overrides), 2):
        option, value = overrides[i], overrides[i + 1]
        if option in out:
            out[out.index(option) + 1] = value
        else:
            out += [option, value]
    return out


def size_text(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def title(case, args):
    """The case's title for the arguments it runs with: sizes in B or KiB, counts with commas."""
    fields = {}
    for i in range(1, len(args) - 1, 2):
        option, value = args[i][2:], int(float(args[i + 1]))
        fields[option] = size_text(value) if option == "size" else f"{value:,}"
    return case.title.format(**fields)


def arguments(case, opts):
    return merged(case.args, case.quick_args) if opts.quick else case.args


def tail(path, lines=20):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


class Server:
    """A server program on its CPU; `port` once it has said where it listens."""

    def __init__(self, exe, cpu, extra=()):
        self.name = os.path.basename(exe)
        self.stderr = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(["taskset", "-c", str(cpu), exe, "--port", "0", *extra],
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.port = self._read_port()

    def _read_port(self):
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        line = self.process.stdout.readline() if ready else ""
        match = re.search(r"listening on port (\d+)", line)
        if not match:
            self.kill()
            raise BenchFailure(f"{self.name} did not start: {line.strip()!r}\n{self.log()}")
        return int(match.group(1))

    def log(self):
        return tail(self.stderr.name)

    def check_alive(self, during, client_errors):
        code = self.process.poll()
        if code is not None:
            raise BenchFailure(f"{self.name} exited with status {code} during {during}\n{self.log()}"
                               f"the load generator said: {client_errors.strip()}")

    def stop(self):
        """SIGTERM; the server must exit cleanly within 10 s and have printed nothing."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchFailure(f"{self.name} did not stop within 10 s of SIGTERM\n{self.log()}")
        if code != 0:
            raise BenchFailure(f"{self.name} exited with status {code} on SIGTERM\n{self.log()}")
        if os.path.getsize(self.stderr.name) != 0:
            raise BenchFailure(f"{self.name} reported errors:\n{self.log()}")
        os.unlink(self.stderr.name)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class RedisServer:
    """A redis-server for --redis, on a free port, without persistence."""

    def __init__(self, cpu):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise BenchFailure("redis-server did not start (apt-get install redis-server)")
                time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}/bench"

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(case, impl, opts, extra=()):
    """One run of `case` on a fresh server of `impl`: the load generator's results.
    With `--redis` among `extra`, a second server beside the first takes half of the
    receivers."""
    exe = os.path.join(opts.builddir, "bench", f"{impl}_{case.server}")
    server = Server(exe, opts.server_cpu, extra)
    second = None
    try:
        args = arguments(case, opts)
        command = ["taskset", "-c", str(opts.client_cpu), os.path.join(opts.builddir, "bench", "loadgen"),
                   *args, "--port", str(server.port)]
        if "--redis" in extra:
            second = Server(exe, opts.server_cpu, extra)
            command += ["--second-port", str(second.port)]
        if case.needs_pid:
            command += ["--server-pid", str(server.process.pid)]
        what = f"{case.name} on {server.name}"
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=opts.case_timeout)
        except subprocess.TimeoutExpired:
            raise BenchFailure(f"{what}: the load generator took over {opts.case_timeout} s\n{server.log()}")
        server.check_alive(what, run.stderr)
        if second:
            second.check_alive(what, run.stderr)
        if run.returncode != 0:
            raise BenchFailure(f"{what}: the load generator failed (status {run.returncode}):\n"
                               f"{run.stderr.strip()}\n{server.name}'s errors:\n{server.log()}")
        results = [line for line in run.stdout.splitlines() if line.startswith("result ")]
        if not results:
            raise BenchFailure(f"{what}: no result line from the load generator:\n{run.stdout}{run.stderr}")
        values = dict(pair.split("=", 1) for pair in results[-1].split()[1:])
        server.stop()
        if second:
            second.stop()
        wanted = [metric.key for metric in case.metrics] + ([BUSY] if BUSY in values else [])
        return {key: float(values[key]) for key in wanted}
    finally:
        server.kill()
        if second:
            second.kill()


def formatted(value, digits):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def machine_line(opts, rounds):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    compared = (f"ours on 1 and {opts.threads} threads" if opts.threads else
                "ours on one instance and on two joined through Redis" if opts.redis else "ours and Beast")
    return (f"Medians of {rounds} round(s), {compared} alternately, a fresh server per run; "
            f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}; server on CPU {opts.server_cpu}, "
            f"load generator on CPU {opts.client_cpu}; meson buildtype=release.")


def table(cases, samples, impls, opts, rounds):
    def median(case, impl, key):
        values = [run[key] for run in samples[case.name].get(impl, []) if key in run]
        return statistics.median(values) if values else None

    (first, first_label, _), (second, second_label, _) = impls[0], impls[-1]
    lines = [machine_line(opts, rounds) + (" Quick run: shorter cases." if opts.quick else ""), "",
             f"| case | metric | {first_label} | {second_label} | {first_label}/{second_label} |",
             "|---|---|---:|---:|---:|"]
    for case in cases:
        name = title(case, arguments(case, opts))
        for metric in case.metrics:
            ours, other = median(case, first, metric.key), median(case, second, metric.key)
            ratio = f"{ours / other:.2f}" if ours is not None and other else "n/a"
            lines.append(f"| {name} | {metric.label} | {formatted(ours, metric.digits)} | "
                         f"{formatted(other, metric.digits)} | {ratio} |")
    lines += ["", f"↑: higher is better, ↓: lower is better; {first_label}/{second_label} is the ratio of the medians."]
    busy = [f"{title(case, arguments(case, opts))} ({label})" for case in cases for impl, label, _ in impls
            if (median(case, impl, BUSY) or 0) >= BUSY_WARNING]
    if busy:
        lines.append(f"The load generator was busy {BUSY_WARNING:.0%} of the time or more in: {'; '.join(busy)}: "
                     "there it may be the limit, not the server.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builddir", required=True, help="where bench/run built the programs")
    parser.add_argument("--rounds", type=int,
                        help="rounds of every case on each server (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="shorter cases (a check that everything works)")
    parser.add_argument("--cases", help="comma-separated case names, of: " + ", ".join(c.name for c in CASES))
    parser.add_argument("--server-cpu", default="0",
                        help="CPU the servers run on (default 0), or a taskset list such as 0,1")
    parser.add_argument("--threads", type=int,
                        help="compare ours on 1 thread with ours on this many (server_options::threads), "
                             "not with Beast; the servers on --server-cpu (default 0,1 here)")
    parser.add_argument("--redis", action="store_true",
                        help="the broadcast cases on one instance of ours against two joined through Redis")
    parser.add_argument("--client-cpu", type=int,
                        help="CPU the load generator runs on (default 1, or 0 on a one-CPU machine)")
    parser.add_argument("--case-timeout", type=float, default=300, help="seconds one run may take (default 300)")
    opts = parser.parse_args()
    if opts.threads is not None and opts.threads < 2:
        parser.error("--threads compares 1 thread with N >= 2")
    if opts.threads and "--server-cpu" not in sys.argv and not any(a.startswith("--server-cpu=") for a in sys.argv):
        opts.server_cpu = "0,1"
    rounds = opts.rounds if opts.rounds is not None else (1 if opts.quick else 3)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    if opts.client_cpu is None:
        opts.client_cpu = 1 if (os.cpu_count() or 1) > 1 else 0
    cases = CASES
    if opts.cases:
        wanted = opts.cases.split(",")
        unknown = [name for name in wanted if name not in {c.name for c in CASES}]
        if unknown:
            parser.error(f"unknown case(s): {', '.join(unknown)}")
        cases = [c for c in CASES if c.name in wanted]

    if opts.threads and opts.redis:
        parser.error("--threads or --redis, not both")
    redis = None
    if opts.redis:
        cases = [c for c in cases if c.server == "broadcast"]
        try:
            redis = RedisServer(opts.server_cpu)
        except BenchFailure as failure:
            print(f"bench: FAILED: {failure}", file=sys.stderr)
            sys.exit(1)
        impls = [("ours", "2 instances, Redis", ["--redis", redis.url]), ("ours", "1 instance", [])]
    elif opts.threads:
        impls = [("ours", "1 thread", []), ("ours", f"{opts.threads} threads", ["--threads", str(opts.threads)])]
    else:
        impls = [(impl, label, extra) for impl, label, extra in IMPLEMENTATIONS
                 if os.path.exists(os.path.join(opts.builddir, "bench", f"{impl}_echo"))]
        if len(impls) < len(IMPLEMENTATIONS):
            print("bench: Boost.Beast was not found at build time: ours only", file=sys.stderr)

    samples = {case.name: {} for case in cases}
    try:
        for r in range(1, rounds + 1):
            for case in cases:
                for impl, label, extra in impls:
                    started = time.monotonic()
                    values = measure(case, impl, opts, extra)
                    samples[case.name].setdefault(label if opts.threads or opts.redis else impl, []).append(values)
                    shown = ", ".join(f"{m.label.rstrip(' ↑↓')} {formatted(values[m.key], m.digits)}"
                                      for m in case.metrics)
                    if BUSY in values:
                        shown += f"; load generator busy {values[BUSY]:.0%}"
                    print(f"[round {r}/{rounds}] {case.name:<12} {label:<5} {shown} "
                          f"({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    except BenchFailure as failure:
        print(f"bench: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    finally:
        if redis:
            redis.stop()
    if opts.threads or opts.redis:
        impls = [(label, label, extra) for _, label, extra in impls]
    print(table(cases, samples, impls, opts, rounds))


if __name__ == "__main__":
    main()
