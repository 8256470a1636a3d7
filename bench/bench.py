#!/usr/bin/env python3
"""distcc-rs against distcc 3.4, side by side in one run.

    python3 bench/bench.py [--jobs-per-round 20] [--rounds 10] [--builds 3]

Starts three daemons of each implementation (--jobs 1 each) on loopback ports, then
alternates the two implementations round by round, so that drift of the machine hits both:

  * per job: a tiny C file compiled through the client, over and over: wall time per job
    (median and spread) and the client's own CPU time (its process tree less the
    preprocessor, measured alone);
  * a whole build: Lua 5.4 (the sources bundled in the lua-src crate, fetched by cargo) with
    `make -j6`: wall time, CPU of the client side and of the daemons, and whether every
    object equals a local build's;
  * the daemons' peak memory (all their processes);
  * the floors no implementation can beat: starting a trivial process, `gcc -E` of the tiny
    file, `gcc -c` of its `.i`, and a loopback exchange of the same bytes.

Prints a Markdown table and writes bench/results.tsv. Needs gcc, make, cargo and Debian's
distcc package (distcc 3.4). Only loopback addresses are used.
"""

import argparse
import glob
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = {
    "name": "distcc-rs",
    "client": os.path.join(ROOT, "target/release/distcc"),
    "daemon": os.path.join(ROOT, "target/release/distccd"),
}
THEIRS = {"name": "distcc 3.4", "client": "/usr/bin/distcc", "daemon": "/usr/bin/distccd"}
TINY = "int add(int a, int b) { return a + b; }\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_timed(argv, **kw):
    """Runs argv; returns (wall seconds, CPU seconds of it and everything it waited for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def process_cpu(pids):
    """CPU seconds (self and reaped children) of processes, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick
    return total


def group_pids(leader):
    """The daemon and its children (distcc 3.4 preforks workers)."""
    pids = [leader]
    for d in glob.glob("/proc/[0-9]*"):
        try:
            fields = open(f"{d}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == leader:
            pids.append(int(os.path.basename(d)))
    return pids


def peak_memory_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Farm:
    """Three daemons of one implementation on loopback ports."""

    def __init__(self, impl, work):
        self.impl = impl
        self.dir = tempfile.mkdtemp(dir=work)
        os.chmod(self.dir, 0o777)
        self.whitelist = os.path.join(self.dir, "whitelist")
        os.mkdir(self.whitelist)
        os.chmod(self.whitelist, 0o755)
        for name in ["gcc", subprocess.check_output(["gcc", "-dumpmachine"], text=True).strip() + "-gcc"]:
            path = shutil.which(name)
            if path:
                os.symlink(path, os.path.join(self.whitelist, name))
        self.daemons = []
        self.ports = []
        for _ in range(3):
            port = free_port()
            argv = [impl["daemon"], "--daemon", "--no-detach", "--listen", "127.0.0.1",
                    "--port", str(port), "--allow", "127.0.0.1", "--jobs", "1",
                    "--log-file", os.path.join(self.dir, f"d{port}.log")]
            if impl is OURS:
                argv += ["--whitelist-dir", self.whitelist]
            self.daemons.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.02)
        self.distcc_dir = os.path.join(self.dir, "distcc")
        os.mkdir(self.distcc_dir)

    def env(self):
        env = dict(os.environ)
        env["DISTCC_HOSTS"] = " ".join(f"127.0.0.1:{p}/1" for p in self.ports)
        env["DISTCC_DIR"] = self.distcc_dir
        for k in ["DISTCC_VERBOSE", "DISTCC_LOG", "DISTCC_FALLBACK"]:
            env.pop(k, None)
        return env

    def pids(self):
        return [p for d in self.daemons for p in group_pids(d.pid)]

    def stop(self):
        for d in self.daemons:
            try:
                os.killpg(d.pid, 9)
            except OSError:
                pass
            d.kill()
            d.wait()


def floors(work, count):
    """The costs every implementation pays: process start, cpp, cc1, a loopback exchange."""
    src = os.path.join(work, "floor.c")
    open(src, "w").write(TINY)
    ipath = os.path.join(work, "floor.i")
    out = {}
    out["start a process"] = statistics.median(run_timed(["/bin/true"])[0] for _ in range(count))
    out["gcc -E"] = statistics.median(
        run_timed(["gcc", "-E", src, "-o", ipath])[0] for _ in range(count))
    out["gcc -c of the .i"] = statistics.median(
        run_timed(["gcc", "-c", ipath, "-o", os.path.join(work, "floor.o")])[0]
        for _ in range(count))
    payload = open(ipath, "rb").read() + b"x" * 100

    def serve(listener):
        for _ in range(count):
            conn, _ = listener.accept()
            data = b""
            while len(data) < len(payload):
                data += conn.recv(65536)
            conn.sendall(b"y" * 1000)
            conn.close()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    thread = threading.Thread(target=serve, args=(listener,))
    thread.start()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        c = socket.create_connection(listener.getsockname())
        c.sendall(payload)
        got = b""
        while len(got) < 1000:
            got += c.recv(65536)
        c.close()
        times.append(time.perf_counter() - start)
    thread.join()
    listener.close()
    out["loopback exchange"] = statistics.median(times)
    return out


def per_job(farm, work, count):
    """Compiles the tiny file `count` times; returns wall times and client CPU times."""
    src = os.path.join(work, "tiny.c")
    open(src, "w").write(TINY)
    walls, cpus = [], []
    for i in range(count):
        wall, cpu = run_timed([farm.impl["client"], "gcc", "-O2", "-c", src, "-o",
                               os.path.join(work, f"tiny{i % 4}.o")],
                              env=farm.env(), cwd=work)
        walls.append(wall)
        cpus.append(cpu)
    return walls, cpus


def cpp_cpu(work, count):
    src = os.path.join(work, "tiny.c")
    return statistics.median(
        run_timed(["gcc", "-O2", "-E", src, "-o", os.devnull])[1] for _ in range(count))


def lua_sources():
    """The Lua 5.4 sources of the lua-src crate, fetched through cargo."""
    found = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/lua-src-547.*/lua-5.4.*"))
    if not found:
        proj = tempfile.mkdtemp()
        subprocess.run(["cargo", "init", "-q", "--name", "fetchlua", proj], check=True)
        subprocess.run(["cargo", "add", "-q", "lua-src@547"], cwd=proj, check=True)
        subprocess.run(["cargo", "fetch", "-q"], cwd=proj, check=True)
        found = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/lua-src-547.*/lua-5.4.*"))
    return sorted(found)[-1]


LUA_MAKEFILE = """\
# Lua's own flags (src/Makefile of Lua 5.4, target linux).
CC ?= gcc
CFLAGS = -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX
SRCS = $(filter-out lua.c luac.c onelua.c,$(wildcard *.c))
all: $(SRCS:.c=.o)
%.o: %.c
\t$(CC) $(CFLAGS) -c $< -o $@
"""


def lua_build(farm, src_dir, work, local=False):
    """Builds Lua with make -j6; returns wall, client CPU, daemon CPU and the objects."""
    build = tempfile.mkdtemp(dir=work)
    for f in glob.glob(os.path.join(src_dir, "*.[ch]")):
        shutil.copy(f, build)
    open(os.path.join(build, "Makefile"), "w").write(LUA_MAKEFILE)
    cc = "gcc" if local else f"{farm.impl['client']} gcc"
    env = farm.env() if farm else dict(os.environ)
    before = process_cpu(farm.pids()) if farm else 0.0
    wall, cpu = run_timed(["make", "-s", "-j6", f"CC={cc}"], cwd=build, env=env,
                          stderr=subprocess.DEVNULL)
    daemon_cpu = (process_cpu(farm.pids()) - before) if farm else 0.0
    objects = {os.path.basename(o): open(o, "rb").read()
               for o in glob.glob(os.path.join(build, "*.o"))}
    shutil.rmtree(build)
    return wall, cpu, daemon_cpu, objects


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs-per-round", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--builds", type=int, default=3)
    ap.add_argument("--tsv", default=os.path.join(ROOT, "bench", "results.tsv"))
    args = ap.parse_args()
    for tool in ["gcc", "make", "cargo", THEIRS["client"], THEIRS["daemon"]]:
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is needed (apt-get install distcc gcc make)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)
    farms = {impl["name"]: Farm(impl, work) for impl in (OURS, THEIRS)}
    try:
        walls = {n: [] for n in farms}
        cpus = {n: [] for n in farms}
        for _ in range(args.rounds):
            for name, farm in farms.items():
                w, c = per_job(farm, work, args.jobs_per_round)
                walls[name] += w
                cpus[name] += c
        cpp = cpp_cpu(work, 50)
        floor = floors(work, 50)

        lua = lua_sources()
        _, _, _, reference = lua_build(None, lua, work, local=True)
        builds = {n: [] for n in farms}
        for _ in range(args.builds):
            for name, farm in farms.items():
                wall, cpu, dcpu, objects = lua_build(farm, lua, work)
                builds[name].append((wall, cpu, dcpu, objects == reference))
        memory = {n: peak_memory_kib(f.pids()) for n, f in farms.items()}
    finally:
        for f in farms.values():
            f.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    floor_job = floor["start a process"] + floor["gcc -E"] + floor["gcc -c of the .i"] \
        + floor["loopback exchange"]
    for name in farms:
        w = walls[name]
        med = statistics.median(w)
        q = statistics.quantiles(w, n=10)
        b = builds[name]
        rows.append({
            "implementation": name,
            "job wall ms (median)": med * 1000,
            "job wall ms p10-p90": f"{q[0] * 1000:.1f}-{q[-1] * 1000:.1f}",
            "overhead above floor ms": (med - floor_job) * 1000,
            "client CPU ms/job (no cpp)": (statistics.median(cpus[name]) - cpp) * 1000,
            "lua build s (median)": statistics.median(x[0] for x in b),
            "lua make+clients CPU s (with cpp)": statistics.median(x[1] for x in b),
            "lua daemon CPU s": statistics.median(x[2] for x in b),
            "lua objects identical": all(x[3] for x in b),
            "daemon peak memory MiB": memory[name] / 1024,
        })
    ours, theirs = rows
    keys = list(ours)[1:]
    print("| figure | distcc-rs | distcc 3.4 | ratio |")
    print("|---|---|---|---|")
    with open(args.tsv, "w") as tsv:
        tsv.write("figure\tdistcc-rs\tdistcc 3.4\tratio\n")
        for k in keys:
            a, t = ours[k], theirs[k]
            if isinstance(a, float) and isinstance(t, float) and t:
                ratio = f"{a / t:.2f}"
                a_s, t_s = f"{a:.2f}", f"{t:.2f}"
            else:
                ratio, a_s, t_s = "", str(a), str(t)
            print(f"| {k} | {a_s} | {t_s} | {ratio} |")
            tsv.write(f"{k}\t{a_s}\t{t_s}\t{ratio}\n")
        for k, v in floor.items():
            print(f"| floor: {k} ms | {v * 1000:.2f} | | |")
            tsv.write(f"floor: {k} ms\t{v * 1000:.2f}\t\t\n")


if __name__ == "__main__":
    main()
