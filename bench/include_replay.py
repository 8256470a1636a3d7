#!/usr/bin/env python3
"""The include server alone: a tree's requests replayed against `pump --serve`.

    python3 bench/include_replay.py [--tree lua|leveldb] [--runs N] [--threads T] [--bin DIR]
                                    [--busy] [--gap MS]

Lays out the tree as `bench.py` does (Lua's 32 files, LevelDB's CMake tree), takes its
compile commands, and for each run starts a fresh include server (our `pump --serve`),
sends it every command as distcc's client would (`T` connections at a time, 2 unless
told), stops it and reads the CPU it wrote to its statistics file. Prints the median and
the least of the runs: the server's whole CPU (user and system) and the CPU of its answers.

Sent back to back, the requests find the server's memory in the processor's caches: a
request costs about 0.6x what it costs in a real pump build. With `--gap 20`, each
connection waits 20 ms before its next request, as in a build, and the CPU sits idle
meanwhile; on this machine that alone empties the caches (a walk over 256 KB takes 6x as
long after 20 ms idle; session 24 of bench/RESULTS.md), and the requests cost what they
cost in a build. With `--busy`, the tree's own compiles run on every CPU meanwhile and
the gap is 10 ms unless told. It is for comparing two builds of the server in a minute,
not for the targets: those are measured in real builds by
`bench.py --include-server only`.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# What stands for the client in the commands the trees print; dropped from each.
CLIENT = "distcc-replay-client"


def header(token, n):
    return token + b"%08x" % n


def ask(sock, cwd, argv):
    """Sends one request (distcc 3.4's include-server protocol); returns how many paths
    the reply named."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    msg = header(b"CDIR", len(cwd.encode())) + cwd.encode() + header(b"ARGC", len(argv))
    for a in argv:
        msg += header(b"ARGV", len(a.encode())) + a.encode()
    s.sendall(msg)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return int(out[4:12], 16)


def busy(commands, stop):
    """Compiles a few of the tree's units over and over until `stop` is set."""
    while not stop.is_set():
        for cwd, argv in commands[:4]:
            subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def replay(pump, commands, threads, work, gap=0.0):
    """One server, every command once, each connection waiting `gap` s before its next;
    returns (server CPU s, answers' CPU s)."""
    sock, stats = os.path.join(work, "socket"), os.path.join(work, "stats")
    for p in (sock, stats):
        if os.path.exists(p):
            os.unlink(p)
    env = dict(os.environ, DISTCC_INCLUDE_SERVER_STATS=stats,
               DISTCC_DIR=os.path.join(work, "distcc-dir"))
    server = subprocess.Popen([pump, "--serve", sock], env=env)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the include server did not start")
        time.sleep(0.005)
    def ask_then_wait(c):
        named = ask(sock, *c)
        time.sleep(gap)
        return named
    with ThreadPoolExecutor(threads) as pool:
        named = list(pool.map(ask_then_wait, commands))
    if not all(named):
        print("include_replay: a request was not covered", file=sys.stderr)
    server.send_signal(signal.SIGTERM)
    server.wait()
    lines = open(stats).read().splitlines()
    answers = sum(int(line.split()[2]) for line in lines if line.startswith("request "))
    user, system = [int(x) for x in next(
        line for line in lines if line.startswith("server ")).split()[1:3]]
    return (user + system) / 1e6, answers / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", choices=["lua", "leveldb"], default="lua")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default=bench.RELEASE, help="where `pump` is")
    ap.add_argument("--busy", action="store_true",
                    help="compile on every CPU meanwhile, 10 ms between requests")
    ap.add_argument("--gap", type=float, default=None,
                    help="ms each connection waits between its requests (0, or 10 with --busy)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="include-replay-")
    tree = {"lua": bench.Lua, "leveldb": bench.LevelDB}[args.tree](work)
    tree.prepare(None)
    # A file written less than `TOO_NEW` (100 ms) ago is read again at each request
    # (src/include/search.rs), as it would not be in a build started later.
    time.sleep(0.2)
    commands = [(cwd, argv[1:] if argv[0] == CLIENT else argv)
                for cwd, argv in tree.compile_commands(CLIENT)]
    stop = threading.Event()
    compilers = [threading.Thread(target=busy, args=(commands, stop))
                 for _ in range(os.cpu_count() if args.busy else 0)]
    for t in compilers:
        t.start()
    try:
        gap = args.gap if args.gap is not None else (10 if args.busy else 0)
        runs = [replay(os.path.join(args.bin, "pump"), commands, args.threads, work,
                       gap / 1000)
                for _ in range(args.runs)]
    finally:
        stop.set()
        for t in compilers:
            t.join()
    server = [r[0] * 1000 for r in runs]
    answers = [r[1] * 1000 for r in runs]
    print(f"{args.tree}: {len(commands)} requests, {args.runs} runs, {args.threads} at a "
          f"time{', compilers busy' if args.busy else ''}, {gap:g} ms between: server CPU ms "
          f"median {statistics.median(server):.1f} (least "
          f"{min(server):.1f}), answers' CPU ms median {statistics.median(answers):.1f}")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
