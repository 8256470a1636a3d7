#!/usr/bin/env python3
"""distcc-rs against distcc 3.4, side by side in one run.

    python3 bench/bench.py [--workloads tiny,cxx,lua,leveldb,kernel,farm,wire] [--rounds 10]
                           [--jobs-per-round 20] [--cxx-jobs-per-round 2] [--builds 3]
                           [--include-server on|off|only]

Starts three daemons of each implementation (--jobs 1 each) on loopback ports, then runs
each selected workload, alternating the two implementations (and, for builds, a local
build) so that drift of the machine hits both:

  * tiny, cxx: one file compiled through the client over and over, a tiny C file or a
    typical C++ file (standard headers, about 1.5 MB preprocessed): wall time per job
    (median and spread) and the client's own CPU time (its process tree less the
    preprocessor, measured alone), against the floors no implementation can beat: starting
    a trivial process, `gcc -E` of the file, `gcc -c` of its preprocessed text, and a
    loopback exchange of the same bytes;
  * lua, leveldb, leveldb-clang, leveldb-clang-g, kernel: whole builds of real trees: Lua
    5.4 (the lua-src crate) with make, LevelDB 1.22 (the leveldb-sys crate) with its own
    CMakeLists.txt and Ninja (with gcc, and with clang and clang++, without and with `-g`),
    and Linux 6.1 `tinyconfig` (Debian's linux-source-6.1) with Kbuild: wall time, CPU of the
    client side and of the daemons, and how many objects equal a local build's; each also
    built by ours in pump mode (the build under our `pump`, hosts `,cpp,lzo`), whose
    client side counts the include server, against distcc 3.4's plain mode and our own;
    and (`--include-server`, on unless told) the include server against the local
    preprocessor runs that pump mode takes off the client: the CPU of those runs in our
    plain builds (from the client's trace) and made again one at a time, the server's CPU
    and request times in the pump builds, and
    request times in a rebuild served by the same, warm, server, in a second table;
  * farm: LevelDB again, as on a small farm: the build and its client on CPU 0, one
    daemon with one slot on CPU 1 (a remote host's CPU), against the build alone on CPU 0;
  * wire: one Lua build per implementation with and without `,lzo` while tcpdump captures
    the daemon ports on lo, and one of ours in pump mode (`,cpp,lzo`): bytes each way and
    packets;
  * lua-cache, leveldb-cache, kernel-cache: the compile cache (`cache_rows`): a cold
    build with our client's cache against the same build without it, the warm rebuild
    after the tree's clean against distcc 3.4's plain build and against ccache's warm
    rebuild (Debian's ccache, direct mode, `CCACHE_PREFIX` distcc 3.4 for its cold
    build), and a second client with no cache of its own against daemons whose cache is
    warm: the daemons' CPU in that build against a cold one;
  * the daemons' peak memory (all their processes), after the workloads.

Prints Markdown tables and writes them to bench/results.tsv and bench/results-include.tsv.
Needs cargo; run as root, installs the Debian packages the selected workloads need (distcc
3.4 among them) when they are missing. Only loopback addresses are used.
"""

import argparse
import collections
import contextlib
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where `cargo build --release` (run in ROOT) puts the binaries.
RELEASE = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target", "release")
OURS = {
    "name": "distcc-rs",
    "client": os.path.join(RELEASE, "distcc"),
    "daemon": os.path.join(RELEASE, "distccd"),
    # Pump mode: `pump COMMAND` starts our include server, runs the build, stops it.
    "pump": os.path.join(RELEASE, "pump"),
}
THEIRS = {"name": "distcc 3.4", "client": "/usr/bin/distcc", "daemon": "/usr/bin/distccd"}
WORKLOADS = ["tiny", "cxx", "lua", "leveldb", "leveldb-clang", "leveldb-clang-g", "kernel",
             "farm", "wire", "lua-cache", "leveldb-cache", "kernel-cache", "transport"]
# Twice the three daemons' slots, so that preprocessing overlaps remote compiles.
MAKE_JOBS = "-j6"

TINY = "int add(int a, int b) { return a + b; }\n"
# About 1.5 MB once preprocessed by g++ 12 (`g++ -O2 -E | wc -c`), and some code that
# instantiates what it includes, as a typical source file of a C++ project does.
TYPICAL_CXX = """\
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

struct Entry {
    std::string word;
    int count;
};

static std::vector<Entry> tally(const std::vector<std::string> &words) {
    std::unordered_map<std::string, int> counts;
    for (const auto &w : words)
        ++counts[w];
    std::vector<Entry> out;
    for (const auto &kv : counts)
        out.push_back({kv.first, kv.second});
    std::sort(out.begin(), out.end(), [](const Entry &a, const Entry &b) {
        return a.count != b.count ? a.count > b.count : a.word < b.word;
    });
    return out;
}

int main() {
    std::vector<std::string> words;
    for (std::string w; std::cin >> w;)
        words.push_back(w);
    std::map<int, std::vector<std::string>> by_length;
    for (const auto &e : tally(words))
        by_length[static_cast<int>(e.word.size())].push_back(e.word);
    std::function<void(int, const std::vector<std::string> &)> show =
        [](int len, const std::vector<std::string> &ws) {
            std::cout << len << ':';
            for (const auto &w : ws)
                std::cout << ' ' << w;
            std::cout << '\\n';
        };
    for (const auto &kv : by_length)
        show(kv.first, kv.second);
}
"""
# workload: (file name, compiler, text, floor runs). The floor runs are fewer for the C++
# file, whose compile alone takes most of a second.
JOB_FILES = {
    "tiny": ("tiny.c", "gcc", TINY),
    "cxx": ("typical.cc", "g++", TYPICAL_CXX),
}

KERNEL_TARBALL = "/usr/src/linux-source-6.1.tar.xz"
# Fixed stamps, so that a kernel build's objects do not depend on when or where it ran.
KBUILD_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 2026",
    "KBUILD_BUILD_USER": "u",
    "KBUILD_BUILD_HOST": "h",
    "KBUILD_BUILD_VERSION": "1",
}

# What each workload needs on the machine besides distcc 3.4 and gcc: (a program on PATH,
# or an absolute path, and the Debian package that provides it).
NEEDS = {
    "tiny": [],
    "cxx": [("g++", "g++")],
    "lua": [("make", "make")],
    "leveldb": [("g++", "g++"), ("cmake", "cmake"), ("ninja", "ninja-build")],
    "leveldb-clang": [("clang++", "clang"), ("cmake", "cmake"), ("ninja", "ninja-build")],
    "leveldb-clang-g": [("clang++", "clang"), ("cmake", "cmake"), ("ninja", "ninja-build")],
    "kernel": [("make", "make"), (KERNEL_TARBALL, "linux-source-6.1"), ("flex", "flex"),
               ("bison", "bison"), ("bc", "bc"), ("/usr/include/libelf.h", "libelf-dev")],
    "farm": [("g++", "g++"), ("cmake", "cmake"), ("ninja", "ninja-build"),
             ("taskset", "util-linux")],
    "wire": [("make", "make"), ("tcpdump", "tcpdump")],
    "transport": [("make", "make"), ("/usr/sbin/sshd", "openssh-server"),
                  ("ssh", "openssh-client")],
}
for _tree in ["lua", "leveldb", "kernel"]:
    NEEDS[f"{_tree}-cache"] = NEEDS[_tree] + [("ccache", "ccache")]


def ensure_installed(workloads):
    """Installs the Debian packages the selected workloads need and the machine lacks."""
    wanted = [(THEIRS["daemon"], "distcc"), ("gcc", "gcc")]
    wanted += [n for w in workloads for n in NEEDS[w]]
    missing = sorted({pkg for thing, pkg in wanted
                      if not (os.path.exists(thing) if thing.startswith("/")
                              else shutil.which(thing))})
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench: needs Debian packages {' '.join(missing)} (apt-get install as root)")
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True,
                   stdout=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port):
    """Waits (at most about 4 s) until something listens on loopback `port`."""
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)


def run_timed(argv, log=None, own=False, started=None, **kw):
    """Runs argv; returns (wall seconds, CPU seconds of it and everything it waited for),
    and with `own` also the CPU seconds of its process alone (read from /proc/PID/schedstat
    while it is a zombie, to the nanosecond).

    With `log`, its output goes to that file, whose end is shown if it fails. With
    `started`, that is called with the process id once it runs."""
    out = open(log, "w") if log else None
    if out:
        kw.update(stdout=out, stderr=subprocess.STDOUT)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, **kw)
    if started:
        started(proc.pid)
    if own:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        own_cpu = int(open(f"/proc/{proc.pid}/schedstat").read().split()[0]) / 1e9
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if out:
        out.close()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        tail = "".join(open(log, errors="replace").readlines()[-30:]) if log else ""
        raise RuntimeError(f"{argv} failed with {code}\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return (wall, cpu, own_cpu) if own else (wall, cpu)


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


class IncludeServerWatch:
    """The CPU time of the include server a `pump` process starts (`pump --serve`, its
    child), sampled from /proc every 20 ms until it is gone: the last sample. The server is
    idle from the end of the build to its stop, so the last sample is its whole CPU time
    to a sample or so. This is a part of the build's client-side CPU, which counts it
    already: `pump` reaps the server, so its time is in what waiting for `pump` reports."""

    def __init__(self):
        self.cpu = 0.0
        self.found = False
        self.thread = None

    def start(self, pump_pid):
        self.thread = threading.Thread(target=self.watch, args=(pump_pid,), daemon=True)
        self.thread.start()

    def watch(self, pump_pid):
        server = None
        while server is None:
            if not os.path.exists(f"/proc/{pump_pid}"):
                return
            for pid in group_pids(pump_pid)[1:]:
                try:
                    argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                    comm = open(f"/proc/{pid}/comm", "rb").read().strip()
                except OSError:
                    continue
                # Ours forks itself and names the child (src/include/pump.rs).
                if b"--serve" in argv or comm == b"pump --serve":
                    server = pid
            time.sleep(0.005)
        self.found = True
        while True:
            try:
                stat = open(f"/proc/{server}/stat").read()
            except OSError:
                return
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                return
            self.cpu = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            time.sleep(0.02)

    def stop(self):
        if self.thread:
            self.thread.join()
        if not self.found:
            raise RuntimeError("pump: no include server seen")
        return self.cpu


def pump_log_counts(log):
    """From a pump build's output: the jobs the include server could not analyse, which
    the client then preprocessed itself (plain mode), the jobs that failed on a host in
    pump mode and were compiled again here (pump's own count), and the reasons the
    server gave, by how often it gave each."""
    text = open(log, errors="replace").read()
    plain = text.count("failed to get includes from include server, preprocessing locally")
    failed = re.search(r"Warning: (\d+) pump-mode compilation\(s\) failed on server", text)
    reasons = {}
    for line in text.splitlines():
        m = re.match(r"WARNING include server: (?:File: '[^']*': )?(.*)", line)
        if m:
            reasons[m.group(1)] = reasons.get(m.group(1), 0) + 1
    return plain, int(failed.group(1)) if failed else 0, reasons


def read_stats(path):
    """The include server's statistics file (`DISTCC_INCLUDE_SERVER_STATS`): its request
    lines in order, each (wall s, CPU s of the answering thread, files named, covered,
    how it was answered, the mirror's generation, the source: `src/include/server.rs`),
    and its `server` line (user, system, children's user, children's system seconds; the
    children are the compilers it asked for their built-in directories and macros), None
    if the server did not write one."""
    requests, server = [], None
    with contextlib.suppress(FileNotFoundError):
        for line in open(path):
            f = line.split(maxsplit=7)
            if f[:1] == ["request"]:
                how, generation = (f[5], int(f[6])) if len(f) > 6 else ("", 0)
                source = f[7].rstrip("\n") if len(f) > 7 else ""
                requests.append((int(f[1]) / 1e6, int(f[2]) / 1e6, int(f[3]), f[4] == "1",
                                 how, generation, source))
            elif f[:1] == ["server"]:
                server = tuple(int(x) / 1e6 for x in f[1:5])
    return requests, server


# What the client compiles remotely, by the input's extension (`cmdline::classify`); an
# assembler `.S` it compiles here, with no separate preprocessor.
C_SOURCES = (".c", ".cc", ".cp", ".cxx", ".cpp", ".CPP", ".c++", ".C", ".m", ".mm", ".M")


def distcc_jobs(commands):
    """Of a tree's compile commands (working directory, argv), those a distcc client ran
    (its argv[0] is `distcc`) with `-c` (or `-S`) and a C or C++ source: the jobs a plain
    build preprocesses on the client. Each comes back as the compiler's argv, without the
    client."""
    jobs = []
    for cwd, argv in commands:
        if not argv or os.path.basename(argv[0]) != "distcc":
            continue
        argv = argv[1:]
        if ("-c" in argv or "-S" in argv) and any(a.endswith(C_SOURCES) and not a.startswith("-")
                                                  for a in argv[1:]):
            jobs.append((cwd, argv))
    return jobs


def cpp_argv(argv, text, deps):
    """The preprocessor run distcc's client makes for the compile `argv`
    (`Compile::cpp_argv`): the same arguments with `-c` (or `-S`) as `-E`, without `-o`; the
    text goes to the file `text`, and the dependency file that `-MD`, `-MMD`, `-MF` or
    Kbuild's `-Wp,-MMD,FILE` ask for to the file `deps`, so that the tree is left alone.
    The client writes the text into a memory file and the dependency file where the build
    wants it: both cost the same here, a file in /dev/shm."""
    out = [argv[0]]
    output = None
    has_mf = has_target = wants_deps = False
    i = 1
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "-o":
            output = argv[i]
            i += 1
        elif a.startswith("-o"):
            output = a[2:]
        elif a in ("-c", "-S"):
            out.append("-E")
        elif a == "-MF":
            out += ["-MF", deps]
            has_mf = True
            i += 1
        elif a.startswith("-MF"):
            out += ["-MF", deps]
            has_mf = True
        elif re.match(r"-Wp,-MM?D,", a):
            out.append(f"-Wp,{a.split(',')[1]},{deps}")
        else:
            wants_deps |= a in ("-MD", "-MMD")
            has_target |= a in ("-MT", "-MQ") or re.match(r"-M[TQ].", a) is not None
            out.append(a)
    if wants_deps and not has_mf:
        # The client names the file after the object and the target after the object.
        out += ["-MF", deps]
        if not has_target and output:
            out += ["-MQ", output]
    return out + ["-o", text]


def debug_info(argv):
    """Whether the compile asks for debug information, the last `-g` option deciding
    (`cmdline::classify::debug_info`)."""
    on = False
    for a in argv[1:]:
        if not a.startswith("-g"):
            continue
        g = a[2:]
        level = next(g[len(f):] for f in ["gdb", "stabs+", "stabs", "xcoff+", "xcoff",
                                          "vms", "ctf", ""] if g.startswith(f))
        if level.isdigit() or level == "":
            on = level != "0"
        elif g.startswith("dwarf") or g == "btf":
            on = True
    return on


# Options under which our client does not preprocess with `-fdirectives-only`
# (`cmdline::classify::DIRECTIVES_ONLY_CONFLICTS`).
DIRECTIVES_ONLY_CONFLICTS = {
    "-fopenmp", "-fopenmp-simd", "-fopenacc", "-pedantic", "-pedantic-errors", "-Wpedantic",
    "-traditional-cpp", "-traditional", "-C", "-CC", "-P", "-Wunused-macros",
    "-fdirectives-only", "-fno-directives-only", "-fpreprocessed", "-fno-working-directory",
    "-imacros",
}


def directives_only(argv):
    """Whether our client preprocesses the compile `argv` with `-fdirectives-only`, as it
    does by default (no `DISTCC_DIRECTIVES_ONLY`): gcc, debug information asked for, and
    nothing in the way (`cmdline::classify::keeps_columns`). The kernel's boot code is
    built with `-g`."""
    def unknown_to_cpp(a):
        if a.startswith("-Wp,"):
            parts = a[4:].split(",")
            return parts[0] not in ("-MD", "-MMD") or len(parts) != 2
        return a == "-Xpreprocessor"

    return ("clang" not in os.path.basename(argv[0]) and debug_info(argv)
            and not any(a in DIRECTIVES_ONLY_CONFLICTS or unknown_to_cpp(a)
                        for a in argv[1:]))


def preprocessor_cpu(tree, client, work):
    """The CPU seconds of the local preprocessor runs of a plain build of `tree`, just
    built: every compile job the client ran (from the tree's own record of its commands),
    preprocessed as the client does, one at a time; and how many jobs there were."""
    jobs = distcc_jobs(tree.compile_commands(client))
    if not jobs:
        raise RuntimeError(f"{tree.name}: no compile commands found for the preprocessor")
    scratch = tempfile.mkdtemp(dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else work)
    text, deps = os.path.join(scratch, "cpp.i"), os.path.join(scratch, "cpp.d")
    total = 0.0
    try:
        for cwd, argv in jobs:
            cpp = cpp_argv(argv, text, deps)
            if directives_only(argv):
                cpp[-2:-2] = ["-fdirectives-only"]
            total += run_timed(cpp, cwd=cwd, stdin=subprocess.DEVNULL)[1]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return total, len(jobs)


def warm_pump_builds(tree, farm, work):
    """Two pump builds of `tree` served by one include server, as `eval "$(pump
    --startup)"`, the build, its objects removed (only them: `remove_objects` where
    `clean` removes more), the build again, `pump --shutdown`:
    the second build's requests find the server's caches warm. Returns the second build's
    request lines, the server's CPU seconds during each build (from /proc: itself and the
    compilers it reaped) and its `server` line for both."""
    stats = os.path.join(work, f"{tree.name}-warm.stats")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(stats)
    pump = farm.impl["pump"]
    argv = tree.prepare(farm.impl["client"])
    env = farm.env(",cpp,lzo")
    env.update(KBUILD_ENV)
    env["DISTCC_INCLUDE_SERVER_STATS"] = stats
    started = subprocess.run([pump, "--startup"], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)
    if started.returncode != 0:
        raise RuntimeError(f"pump --startup failed: {started.stderr}")
    for line in started.stdout.splitlines():
        m = re.fullmatch(r"export (\w+)='(.*)'", line)
        if m:
            env[m.group(1)] = m.group(2)
    server = int(env["INCLUDE_SERVER_PID"])
    cpu, counts = [process_cpu([server])], []
    try:
        for i in range(2):
            if i:
                getattr(tree, "remove_objects", tree.clean)()
            log = os.path.join(work, f"{tree.name}-warm{i + 1}.log")
            run_timed(argv, log=log, cwd=tree.tree, env=env)
            cpu.append(process_cpu([server]))
            counts.append(len(read_stats(stats)[0]))
    finally:
        with open(os.path.join(work, f"{tree.name}-warm-shutdown.log"), "w") as out:
            subprocess.run([pump, "--shutdown"], env=env, stdin=subprocess.DEVNULL,
                           stdout=out, stderr=subprocess.STDOUT)
    requests, server_line = read_stats(stats)
    return requests[counts[0]:], [b - a for a, b in zip(cpu, cpu[1:])], server_line


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
    """Daemons of one implementation on loopback ports (three unless told), each allowed
    one job, on the CPU `cpu` if given."""

    def __init__(self, impl, work, daemons=3, cpu=None, extra=()):
        self.impl = impl
        self.dir = tempfile.mkdtemp(dir=work)
        os.chmod(self.dir, 0o777)
        self.whitelist = os.path.join(self.dir, "whitelist")
        os.mkdir(self.whitelist)
        os.chmod(self.whitelist, 0o755)
        # The names the workloads call the compilers by: CMake passes /usr/bin/cc and
        # /usr/bin/c++, which the daemons take by their last component.
        triplet = subprocess.check_output(["gcc", "-dumpmachine"], text=True).strip()
        for name in ["gcc", "g++", "cc", "c++", f"{triplet}-gcc", f"{triplet}-g++",
                     "clang", "clang++"]:
            path = shutil.which(name)
            if path:
                os.symlink(path, os.path.join(self.whitelist, name))
        self.daemons = []
        self.ports = []
        for _ in range(daemons):
            port = free_port()
            argv = [impl["daemon"], "--daemon", "--no-detach", "--listen", "127.0.0.1",
                    "--port", str(port), "--allow", "127.0.0.1", "--jobs", "1",
                    "--log-file", os.path.join(self.dir, f"d{port}.log")]
            if impl is OURS:
                argv += ["--whitelist-dir", self.whitelist, *extra]
            if cpu is not None:
                argv = ["taskset", "-c", str(cpu)] + argv
            self.daemons.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            wait_listening(port)
        self.distcc_dir = os.path.join(self.dir, "distcc")
        os.mkdir(self.distcc_dir)

    def env(self, options=""):
        """The client's environment; `options` is a host suffix such as ",lzo"."""
        env = dict(os.environ)
        env["DISTCC_HOSTS"] = " ".join(f"127.0.0.1:{p}/1{options}" for p in self.ports)
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


def write_job_file(work, workload):
    name, compiler, text = JOB_FILES[workload]
    src = os.path.join(work, name)
    open(src, "w").write(text)
    return src, compiler


class Floors:
    """The costs every implementation pays: process start, cpp, cc1, a loopback exchange.

    One sample of each is taken per turn of the jobs, so that they run in the same
    conditions as the jobs do. Both compiler runs take the job's -O2, which changes how
    long cc1 takes; the preprocessor writes to /dev/null, and its CPU is what each client's
    own CPU is reckoned without."""

    def __init__(self, work, workload):
        self.src, self.compiler = write_job_file(work, workload)
        ext = ".i" if self.compiler == "gcc" else ".ii"
        self.ipath = os.path.join(work, f"floor{ext}")
        self.opath = os.path.join(work, "floor.o")
        run_timed([self.compiler, "-O2", "-E", self.src, "-o", self.ipath])
        run_timed([self.compiler, "-O2", "-c", self.ipath, "-o", self.opath])
        self.names = ["start a process", f"{self.compiler} -E",
                      f"{self.compiler} -c of the {ext}", "loopback exchange"]
        self.samples = {n: [] for n in self.names}
        self.cpp_cpu = []
        self.payload = open(self.ipath, "rb").read() + b"x" * 100
        self.reply = open(self.opath, "rb").read()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            # A connection that fails must not end the thread: later samples need it.
            with conn, contextlib.suppress(OSError):
                data = b""
                while len(data) < len(self.payload):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.reply)

    def sample(self):
        start, cpp, cc1, loopback = self.names
        self.samples[start].append(run_timed(["/bin/true"])[0])
        wall, cpu = run_timed([self.compiler, "-O2", "-E", self.src, "-o", os.devnull])
        self.samples[cpp].append(wall)
        self.cpp_cpu.append(cpu)
        self.samples[cc1].append(
            run_timed([self.compiler, "-O2", "-c", self.ipath, "-o", self.opath])[0])
        for attempt in range(3):
            try:
                self.samples[loopback].append(self.exchange())
                break
            except ConnectionError as e:
                # Seen once in many runs: a reset on loopback. A sample, not the run, is lost.
                print(f"loopback exchange, attempt {attempt + 1}: {e}", file=sys.stderr)

    def exchange(self):
        """Seconds for one connection that sends the text and reads the object back."""
        begin = time.perf_counter()
        with socket.create_connection(self.listener.getsockname()) as c:
            c.sendall(self.payload)
            got = b""
            while len(got) < len(self.reply):
                chunk = c.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the whole reply")
                got += chunk
        return time.perf_counter() - begin

    def medians(self):
        self.listener.close()
        return {n: statistics.median(v) for n, v in self.samples.items()}


def one_job(farm, work, workload, i):
    """Compiles the workload's file through the farm's client; returns wall seconds, CPU
    seconds of the client and what it waited for, and CPU seconds of the client alone."""
    src, compiler = write_job_file(work, workload)
    return run_timed([farm.impl["client"], compiler, "-O2", "-c", src, "-o",
                      os.path.join(work, f"{workload}{i % 4}.o")],
                     own=True, env=farm.env(), cwd=work)


def crate_dir(spec, pattern):
    """A directory inside a crate from crates.io, fetched through cargo into its cache."""
    cache = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")),
                         "registry", "src", "*", pattern)
    if not glob.glob(cache):
        proj = tempfile.mkdtemp()
        subprocess.run(["cargo", "init", "-q", "--name", "fetchsrc", proj], check=True)
        subprocess.run(["cargo", "add", "-q", spec], cwd=proj, check=True)
        subprocess.run(["cargo", "fetch", "-q"], cwd=proj, check=True)
        shutil.rmtree(proj)
    return sorted(glob.glob(cache))[-1]


def objects(tree):
    """Every object file below `tree`, by path relative to it."""
    found = {}
    for d, _, files in os.walk(tree):
        for f in files:
            if f.endswith(".o"):
                path = os.path.join(d, f)
                found[os.path.relpath(path, tree)] = open(path, "rb").read()
    return found


LUA_MAKEFILE = """\
# Lua's own flags (src/Makefile of Lua 5.4, target linux).
CC ?= gcc
CFLAGS = -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX
SRCS = $(filter-out lua.c luac.c onelua.c,$(wildcard *.c))
all: $(SRCS:.c=.o)
%.o: %.c
\t$(CC) $(CFLAGS) -c $< -o $@
"""


class Lua:
    """Lua 5.4's 32 C files with Lua's own flags, in a fresh copy for every build."""

    name = "lua"

    def __init__(self, work):
        self.src = crate_dir("lua-src@547", "lua-src-547.*/lua-5.4.*")
        self.tree = os.path.join(work, "lua")

    def prepare(self, client):
        """Lays out a clean tree; returns the timed command, through `client` if given."""
        shutil.rmtree(self.tree, ignore_errors=True)
        os.mkdir(self.tree)
        for f in glob.glob(os.path.join(self.src, "*.[ch]")):
            shutil.copy(f, self.tree)
        open(os.path.join(self.tree, "Makefile"), "w").write(LUA_MAKEFILE)
        cc = f"{client} gcc" if client else "gcc"
        return ["make", "-s", MAKE_JOBS, f"CC={cc}"]

    def compile_commands(self, client):
        """The build's commands (working directory, argv), as `make` prints them."""
        out = subprocess.check_output(["make", "-n", "-B", f"CC={client} gcc"],
                                      cwd=self.tree, text=True)
        return [(self.tree, shlex.split(line)) for line in out.splitlines() if line.strip()]

    def clean(self):
        """Removes the objects, as `make clean` would."""
        for f in glob.glob(os.path.join(self.tree, "*.o")):
            os.unlink(f)


class LevelDB:
    """LevelDB 1.22's library with its own CMakeLists.txt (Release) and Ninja.

    The build directory has the same path every time, so that nothing in the objects
    differs by where they were built."""

    name = "leveldb"
    # CMake options naming the compilers: none for its default, gcc.
    compilers = []
    build_type = "Release"

    def __init__(self, work):
        self.src = crate_dir("leveldb-sys@2.0.9", "leveldb-sys-*/deps/leveldb-1.22")
        self.tree = os.path.join(work, self.name)
        self.log = os.path.join(work, f"{self.name}-cmake.log")

    def prepare(self, client):
        shutil.rmtree(self.tree, ignore_errors=True)
        os.mkdir(self.tree)
        argv = ["cmake", "-G", "Ninja", f"-DCMAKE_BUILD_TYPE={self.build_type}",
                "-DLEVELDB_BUILD_TESTS=OFF", "-DLEVELDB_BUILD_BENCHMARKS=OFF",
                "-DLEVELDB_INSTALL=OFF", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
                *self.compilers, self.src]
        if client:
            argv += [f"-DCMAKE_C_COMPILER_LAUNCHER={client}",
                     f"-DCMAKE_CXX_COMPILER_LAUNCHER={client}"]
        run_timed(argv, log=self.log, cwd=self.tree)
        return ["ninja", MAKE_JOBS]

    def compile_commands(self, client):
        """The build's commands, from CMake's compile_commands.json, which leaves out the
        launcher that every compile of the build goes through: it is put back."""
        found = []
        for entry in json.load(open(os.path.join(self.tree, "compile_commands.json"))):
            argv = entry.get("arguments") or shlex.split(entry["command"])
            if os.path.basename(argv[0]) != "distcc":
                argv = [client] + argv
            found.append((entry["directory"], argv))
        return found

    def clean(self):
        run_timed(["ninja", "-t", "clean"], log=self.log, cwd=self.tree)


class Kernel:
    """Linux 6.1 (Debian's linux-source-6.1), `make ARCH=x86_64 tinyconfig`.

    The tree is unpacked once; every build starts from `make mrproper`. The configuration
    is made with plain gcc: `distcc gcc --version` says the same, so Kbuild keeps it."""

    name = "kernel"

    def __init__(self, work):
        run_timed(["tar", "xf", KERNEL_TARBALL, "-C", work])
        self.tree = os.path.join(work, "linux-source-6.1")
        self.log = os.path.join(work, "kernel-config.log")

    def prepare(self, client):
        for target in ["mrproper", "tinyconfig"]:
            run_timed(["make", "ARCH=x86_64", target], log=self.log, cwd=self.tree)
        argv = ["make", "-s", "ARCH=x86_64", MAKE_JOBS]
        if client:
            argv.append(f"CC={client} gcc")
        return argv

    def compile_commands(self, client):
        """The build's commands, from the first line of Kbuild's `.*.o.cmd` files (and
        `.*.s.cmd`: `kernel/bounds.s` and the like are compiled with `-S`), `cmd_OBJ :=
        COMMAND` (`savedcmd_` in later kernels), written in make's syntax (`$$` for `$`,
        `$(pound)` for `#`); a compile's command goes on with `; objtool ...`, which is
        cut off."""
        found = []
        paths = [p for ext in ["o", "s"] for p in glob.glob(
            os.path.join(self.tree, "**", f".*.{ext}.cmd"), recursive=True)]
        for path in sorted(paths):
            with open(path, errors="replace") as f:
                m = re.match(r"(?:saved)?cmd_\S+ := (.*)", f.readline())
            if not m:
                continue
            text = m.group(1).replace("$(pound)", "#").replace("$$", "$")
            lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            argv = []
            for word in lexer:
                if word in (";", "&&", "||", "|", "&"):
                    break
                argv.append(word)
            found.append((self.tree, argv))
        return found

    def clean(self):
        run_timed(["make", "ARCH=x86_64", "clean"], log=self.log, cwd=self.tree)

    def remove_objects(self):
        """Removes the objects compiled with CC, and nothing else: `make clean` also
        removes the headers Kbuild generates (`bounds.h`, `asm-offsets.h`, the syscall
        tables), which nearly every unit includes, so a rebuild after it is walked afresh
        whatever the server kept."""
        for top, dirs, files in os.walk(self.tree):
            if top == self.tree:
                dirs[:] = [d for d in dirs if d not in ("scripts", "tools")]
            for f in files:
                if f.endswith(".o"):
                    os.unlink(os.path.join(top, f))


class LevelDBClang(LevelDB):
    """LevelDB built by clang and clang++ (issue 20), beside the gcc build."""

    name = "leveldb-clang"
    compilers = ["-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++"]


class LevelDBClangDebug(LevelDBClang):
    """The clang build with `-g` (RelWithDebInfo): in plain mode our client sends these
    compiles to our daemons as the files they read, which makes the objects a local build's
    (distcc 3.4 sends `clang -E` text)."""

    name = "leveldb-clang-g"
    build_type = "RelWithDebInfo"


class FarmLevelDB(LevelDB):
    """LevelDB as on a small farm: the build (and so the client and its preprocessor) on
    CPU 0, one daemon with one slot on CPU 1 as a remote host would be, `ninja -j3`. The
    floor is the same build alone on CPU 0."""

    name = "farm"

    def prepare(self, client):
        return ["taskset", "-c", "0"] + super().prepare(client)[:1] + ["-j3"]


def build(tree, farm, work, options="", pump=False, stats=None, trace=None):
    """One build of `tree`, locally without a farm; returns wall, client CPU, daemon CPU.

    With `trace` (a file name, our client only), the jobs write their records there
    (`DISTCC_TRACE`), and in plain mode the returned tuple goes on with the CPU of the
    preprocessor runs in the build (`traced_preprocessor_cpu`).

    With `pump`, the build runs under our `pump` (the hosts should then be `,cpp`), and
    the returned tuple goes on with the include server's CPU (already in the client CPU),
    the jobs preprocessed here because the include server gave up on them, the jobs
    that failed on a host and were compiled here, and with `stats` (a file name) what the
    include server wrote there (`read_stats`)."""
    argv = tree.prepare(farm.impl["client"] if farm else None)
    if pump:
        argv = [farm.impl["pump"]] + argv
    env = farm.env(options) if farm else dict(os.environ)
    env.update(KBUILD_ENV)  # read by Kbuild alone
    if stats:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stats)
        env["DISTCC_INCLUDE_SERVER_STATS"] = stats
    if trace:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(trace)
        env["DISTCC_TRACE"] = trace
    before = process_cpu(farm.pids()) if farm else 0.0
    log = os.path.join(work, f"{tree.name}{'-pump' if pump else ''}.log")
    watch = IncludeServerWatch() if pump else None
    wall, cpu = run_timed(argv, log=log, cwd=tree.tree, env=env,
                          started=watch.start if watch else None)
    daemon_cpu = (process_cpu(farm.pids()) - before) if farm else 0.0
    if not pump:
        if trace:
            return wall, cpu, daemon_cpu, traced_preprocessor_cpu(trace)
        return wall, cpu, daemon_cpu
    plain, failed, reasons = pump_log_counts(log)
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
        print(f"bench: {tree.name} pump: {n} x include server: {reason}", file=sys.stderr)
    server_stats = read_stats(stats) if stats else None
    return wall, cpu, daemon_cpu, watch.stop(), plain, failed, server_stats


def traced_preprocessor_cpu(trace):
    """The CPU seconds of the preprocessors our client ran in a plain build, from its
    trace: the processes each job sent to a host waited for (its preprocessor, nothing
    else: a job compiled here, whose compiler counts there too, is left out, and so is
    its preprocessor)."""
    with open(trace) as lines:
        records = [json.loads(line) for line in lines]
    return sum(r["children_cpu_us"] for r in records if r["mode"] == "remote") / 1e6


def cache_counts(cache_dir):
    """Our cache's counters, as `distcc --cache-stats` prints them."""
    out = subprocess.check_output([OURS["client"], "--cache-stats"], text=True,
                                  env=dict(os.environ, DISTCC_CACHE_DIR=cache_dir))
    counts = {}
    for line in out.splitlines():
        name, value = line[:24].strip(), line[24:].strip()
        if value.isdigit():
            counts[name] = int(value)
    return counts


def cold_and_warm(tree, client, env, work, label, farm=None, pump=False):
    """A build of a fresh `tree` through `client` with `env`, then the tree's clean and
    the build again: the wall seconds of both, and the CPU seconds `farm`'s daemons
    spent in each. With `pump`, under our `pump` (`env`'s hosts should be `,cpp`)."""
    argv = tree.prepare(client)
    if pump:
        argv = [OURS["pump"]] + argv
    # The tree as it stands before a build, not as it is being laid out: a cache's direct
    # mode (ours, ccache's) does not learn from a file written within a timestamp tick
    # of the compile, and a user's tree was not copied the instant before.
    time.sleep(0.5)
    env = dict(env, **KBUILD_ENV)
    out = []
    for i, step in enumerate(["cold", "warm"]):
        if i:
            tree.clean()
        before = process_cpu(farm.pids()) if farm else 0.0
        wall, _ = run_timed(argv, log=os.path.join(work, f"{tree.name}-{label}-{step}.log"),
                            cwd=tree.tree, env=env)
        out.append((wall, (process_cpu(farm.pids()) - before) if farm else 0.0))
    return out


def cache_rows(farms, work, kind, builds):
    """The compile cache on `kind`'s tree, `builds` rounds of, in order: distcc 3.4's
    plain build; ours without a cache; ours with a fresh cache, cold, then warm after the
    tree's clean; ccache (direct mode, `CCACHE_PREFIX` distcc 3.4) the same way; and a
    client with no cache against daemons of ours that share a fresh cache, then a second
    client after the clean. Returns one row of medians (`CACHE_HEADER`)."""
    tree = kind(work)
    ours, theirs = (farms[n] for n in farms)
    cached_farm = Farm(OURS, work, extra=["--cache-dir", os.path.join(work, "daemon-cache")])
    runs = {k: [] for k in ["3.4", "none", "cold", "warm", "cc-cold", "cc-warm",
                            "d-cold", "d-warm", "hits", "p-cold", "p-warm", "p-hits",
                            "dp-cold", "dp-warm"]}
    try:
        for r in range(builds):
            runs["3.4"].append(build(tree, theirs, work)[0])
            runs["none"].append(build(tree, ours, work)[0])
            cache = os.path.join(work, f"cache-{r}")
            env = dict(ours.env(), DISTCC_CACHE_DIR=cache)
            (cold, _), (warm, _) = cold_and_warm(tree, OURS["client"], env, work, "cache")
            runs["cold"].append(cold)
            runs["warm"].append(warm)
            c = cache_counts(cache)
            runs["hits"].append((c.get("hits, direct", 0), c.get("hits, preprocessed", 0),
                                 c.get("misses", 0)))
            cache = os.path.join(work, f"cache-pump-{r}")
            env = dict(ours.env(",cpp,lzo"), DISTCC_CACHE_DIR=cache)
            (cold, _), (warm, _) = cold_and_warm(tree, OURS["client"], env, work, "cache-pump",
                                                 pump=True)
            runs["p-cold"].append(cold)
            runs["p-warm"].append(warm)
            c = cache_counts(cache)
            runs["p-hits"].append((c.get("hits, direct", 0), c.get("hits, pump request", 0),
                                   c.get("misses", 0)))
            env = dict(theirs.env(), CCACHE_DIR=os.path.join(work, f"ccache-{r}"),
                       CCACHE_PREFIX=THEIRS["client"])
            (cold, _), (warm, _) = cold_and_warm(tree, shutil.which("ccache"), env, work,
                                                 "ccache")
            runs["cc-cold"].append(cold)
            runs["cc-warm"].append(warm)
            # Emptied, not removed: the daemons (no longer root) could not make it again.
            subprocess.run([OURS["client"], "--cache-clear"], check=True,
                           stdout=subprocess.DEVNULL,
                           env=dict(os.environ, DISTCC_CACHE_DIR=os.path.join(work,
                                                                             "daemon-cache")))
            (_, cold), (_, warm) = cold_and_warm(tree, OURS["client"], cached_farm.env(), work,
                                                 "daemon-cache", farm=cached_farm)
            runs["d-cold"].append(cold)
            runs["d-warm"].append(warm)
            # The same under pump: the daemons key what they received and their own
            # system headers.
            subprocess.run([OURS["client"], "--cache-clear"], check=True,
                           stdout=subprocess.DEVNULL,
                           env=dict(os.environ, DISTCC_CACHE_DIR=os.path.join(work,
                                                                             "daemon-cache")))
            (_, cold), (_, warm) = cold_and_warm(tree, OURS["client"],
                                                 cached_farm.env(",cpp,lzo"), work,
                                                 "daemon-cache-pump", farm=cached_farm,
                                                 pump=True)
            runs["dp-cold"].append(cold)
            runs["dp-warm"].append(warm)
    finally:
        cached_farm.stop()

    def med(k):
        return statistics.median(runs[k])

    direct, pre, misses = runs["hits"][-1]
    p_direct, p_request, p_misses = runs["p-hits"][-1]
    print(f"bench: {kind.name} cache: rounds {json.dumps(runs)}", file=sys.stderr)
    return [kind.name, fmt(med("3.4")), fmt(med("none")), fmt(med("cold")),
            ratio(med("cold"), med("none")), fmt(med("warm")), ratio(med("warm"), med("3.4")),
            f"{direct} / {pre} / {misses}", fmt(med("cc-cold")), fmt(med("cc-warm")),
            ratio(med("warm"), med("cc-warm")), fmt(med("d-cold")), fmt(med("d-warm")),
            ratio(med("d-warm"), med("d-cold")), fmt(med("p-cold")), fmt(med("p-warm")),
            ratio(med("p-warm"), med("3.4")), f"{p_direct} / {p_request} / {p_misses}",
            fmt(med("dp-cold")), fmt(med("dp-warm")), ratio(med("dp-warm"), med("dp-cold"))]


CACHE_HEADER = [
    "tree", "3.4 plain build s", "ours, no cache s", "ours, cold cache s",
    "cold / no cache (target 1.03)", "ours, warm rebuild s", "warm / 3.4 (target 0.1)",
    "warm hits direct / preprocessed / misses", "ccache cold s", "ccache warm s",
    "ours warm / ccache warm (target 1.0)", "daemon CPU s, cold daemon cache",
    "daemon CPU s, second client", "second / cold (target 0.1)",
    "ours pump, cold cache s", "ours pump, warm s", "pump warm / 3.4",
    "pump warm hits direct / pump request / misses",
    "pump: daemon CPU s, cold daemon cache", "pump: daemon CPU s, second client",
    "pump second / cold (target 0.1)",
]


def same_objects(reference, tree):
    """How many of the reference objects the tree has, byte for byte, out of how many."""
    built = objects(tree.tree)
    return sum(built.get(p) == data for p, data in reference.items()), len(reference)


class Capture:
    """tcpdump on lo, limited to the daemons' ports, into a pcap file."""

    def __init__(self, path, ports):
        # Headers are enough: TCP payload sizes come from the IP and TCP headers. Without
        # --immediate-mode the last packets wait in a kernel block that tcpdump never reads
        # when it is stopped, uncounted as drops.
        wanted = " or ".join(f"port {p}" for p in ports)
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-s", "128", "-B", "32768", "--immediate-mode",
             "-w", path, f"tcp and ({wanted})"],
            stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump: {line}")

    def stop(self):
        # The last segments of the build may still be in the kernel's buffer.
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        stats = self.proc.communicate()[1]
        dropped = re.search(r"(\d+) packets dropped by kernel", stats)
        if not dropped or dropped.group(1) != "0":
            raise RuntimeError(f"tcpdump lost packets: {stats}")


def wire_counts(path, ports):
    """Packets and TCP payload bytes each way in an Ethernet-framed pcap file (as lo has).

    Retransmitted segments are left out: on a busy machine loopback TCP now and then
    resends a segment whose acknowledgement came late, which says nothing of the client."""
    data = open(path, "rb").read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    if struct.unpack(endian + "I", data[20:24])[0] != 1:
        raise RuntimeError(f"{path}: not Ethernet framing")
    counts = {"up": 0, "down": 0, "packets": 0}
    flows = {}  # (source port, destination port): (first data sequence number, data seen)
    offset = 24
    while offset < len(data):
        caplen = struct.unpack(endian + "I", data[offset + 8:offset + 12])[0]
        ip = data[offset + 16 + 14:offset + 16 + caplen]
        offset += 16 + caplen
        ip_len = (ip[0] & 15) * 4
        tcp = ip[ip_len:]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        payload = struct.unpack(">H", ip[2:4])[0] - ip_len - (tcp[12] >> 4) * 4
        if tcp[13] & 2:  # SYN: a connection starts, perhaps reusing a closed one's ports
            flows[sport, dport] = (seq + 1, 0)
        elif payload:
            first, seen = flows.setdefault((sport, dport), (seq, 0))
            start = (seq - first) % 2**32
            if start + payload <= seen:
                continue  # all of it seen before: a retransmission
            counts["up" if dport in ports else "down"] += start + payload - max(seen, start)
            flows[sport, dport] = (first, start + payload)
        counts["packets"] += 1
    return counts


def fmt(v):
    if v is None:
        return ""
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def ratio(a, b, digits=2):
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return f"{a / b:.{digits}f}" if numbers and b else ""


def job_rows(farms, work, workload, rounds, per_round):
    """The table's rows for one per-job workload, and those of its floors."""
    walls = {n: [] for n in farms}
    cpus = {n: [] for n in farms}
    owns = {n: [] for n in farms}
    # One job of each implementation, then one sample of each floor, in turn: drift hits
    # all alike, and the floors run amid compiles as the jobs do (run back to back on
    # their own they find warmer caches and look cheaper than they are there).
    floors = Floors(work, workload)
    for i in range(rounds * per_round):
        for name, farm in farms.items():
            w, c, own = one_job(farm, work, workload, i)
            walls[name].append(w)
            cpus[name].append(c)
            owns[name].append(own)
        floors.sample()
    cpp = statistics.median(floors.cpp_cpu)
    floor = floors.medians()
    floor_job = sum(floor.values())
    med, spread, client = {}, {}, {}
    for n in farms:
        med[n] = statistics.median(walls[n])
        q = statistics.quantiles(walls[n], n=10)
        spread[n] = f"{q[0] * 1000:.1f}-{q[-1] * 1000:.1f}"
        client[n] = (statistics.median(cpus[n]) - cpp) * 1000
    ours, theirs = farms
    overhead = [(med[n] - floor_job) * 1000 for n in farms]
    # The floor job's samples (the four floors of one turn added up): how far apart they
    # are, over the square root of their number, is about how well their median is known.
    # An overhead within that is noise, and a ratio of two such is meaningless: the C++
    # compile alone moves by tens of milliseconds, its overhead is a few.
    per_turn = [sum(turn) for turn in zip(*floors.samples.values())]
    q = statistics.quantiles(per_turn, n=10)
    noise = (q[-1] - q[0]) / len(per_turn) ** 0.5 * 1000
    if min(overhead) <= noise:
        overhead = [f"{v:.2f} (noise {noise:.2f})" for v in overhead]
    rows = [
        (f"{workload}: job wall ms (median)", med[ours] * 1000, med[theirs] * 1000,
         floor_job * 1000),
        (f"{workload}: job wall ms p10-p90", spread[ours], spread[theirs], None),
        (f"{workload}: overhead above floor ms", *overhead, None),
        (f"{workload}: client CPU ms/job (no cpp)", client[ours], client[theirs], None),
        (f"{workload}: client CPU ms/job (own process)",
         *(statistics.median(owns[n]) * 1000 for n in farms), None),
    ]
    floor_rows = [(f"floor {workload}: {k} ms", None, None, v * 1000)
                  for k, v in floor.items()]
    return rows, floor_rows


def build_rows(farms, work, kind, builds, pump=True, include="off"):
    """The table's rows for one tree, built `builds` times locally and by each farm, and
    with `pump` by our farm in pump mode too (its hosts `,cpp,lzo`); returns them and the
    include server's figures (`include_figures`), or None.

    With `include` "on" (and `pump`), the include server's figures come too: our plain
    builds are traced, for the CPU of their preprocessors; after the first of them, the
    preprocessor runs of its jobs are made again one at a time (`preprocessor_cpu`); the
    pump builds write the server's statistics; and after the
    rounds, two more pump builds share one server (`warm_pump_builds`). With "only", the
    rounds build with our client alone, plainly and in pump mode, for those figures alone,
    and no rows come back."""
    tree = kind(work)
    ours, theirs = farms
    pumped = f"{ours} pump"
    include = include if pump else "off"
    # None: the local build. Each round builds once locally, once with our client in plain
    # mode, once in pump mode, once with distcc 3.4's, in that order.
    names = [None, ours, pumped, theirs] if pump else [None, ours, theirs]
    if include == "only":
        names = [ours, pumped]
    stats = os.path.join(work, f"{kind.name}-pump.stats") if include != "off" else None
    results = {n: [] for n in names}
    reference = None
    cpp = None
    for _ in range(builds):
        for name in results:
            if name == pumped:
                timing = build(tree, farms[ours], work, ",cpp,lzo", pump=True, stats=stats)
            else:
                trace = (os.path.join(work, f"{kind.name}-plain.trace")
                         if name == ours and include != "off" else None)
                timing = build(tree, farms.get(name), work, trace=trace)
            if reference is None:
                reference = objects(tree.tree)
            results[name].append((same_objects(reference, tree), *timing))
            if name == ours and include != "off" and cpp is None:
                cpp = preprocessor_cpu(tree, farms[ours].impl["client"], work)

    def median(name, i):
        return statistics.median(r[i] for r in results[name])

    figures = None
    if include != "off":
        warm = warm_pump_builds(tree, farms[ours], work)
        figures = include_figures(kind.name, cpp, median(ours, 4),
                                  [r[7] for r in results[pumped]], warm,
                                  median(ours, 2), median(pumped, 2))
    if include == "only":
        return [], figures

    def identical(name):
        same, total = min(r[0] for r in results[name])
        return f"{same} of {total}" if kind is Kernel else same == total

    w = kind.name
    rows = [
        (f"{w}: build s (median)", median(ours, 1), median(theirs, 1), median(None, 1)),
        (f"{w}: client-side CPU s (with cpp)", median(ours, 2), median(theirs, 2), None),
        (f"{w}: daemon CPU s", median(ours, 3), median(theirs, 3), None),
        (f"{w}: objects identical", identical(ours), identical(theirs), identical(None)),
    ]
    if pump:
        # Against distcc 3.4 in plain mode (its pump mode needs its Python include server,
        # which fails on current Pythons), and in the last column against our plain mode.
        def against(i):
            return median(pumped, i), median(theirs, i)

        rows += [
            (f"{w} pump: build s (median)", *against(1), median(None, 1), median(ours, 1)),
            (f"{w} pump: client-side CPU s (with cpp, include server)", *against(2), None,
             median(ours, 2)),
            (f"{w} pump: include server CPU s", median(pumped, 4), None, None),
            (f"{w} pump: daemon CPU s", *against(3), None, median(ours, 3)),
            (f"{w} pump: objects identical", identical(pumped), identical(theirs),
             identical(None)),
            (f"{w} pump: jobs preprocessed here (worst build)",
             max(r[5] for r in results[pumped]), None, None),
            (f"{w} pump: jobs failed on a host, compiled here (worst build)",
             max(r[6] for r in results[pumped]), None, None),
        ]
    return rows, figures


def include_figures(tree, cpp, cpp_in_build, pump_stats, warm, plain_client, pump_client):
    """The include server's figures for one tree (issue 15), for the second table:
    `cpp` from `preprocessor_cpu`, `cpp_in_build` the median CPU of the preprocessors in
    our plain builds (`traced_preprocessor_cpu`), `pump_stats` the statistics of each pump build
    (`read_stats`), `warm` from `warm_pump_builds`, and the median client-side CPU of our
    plain and pump builds (the latter with the include server). Where the server's CPU
    goes is printed to stderr."""
    cpp_cpu, jobs = cpp
    if any(server is None for _, server in pump_stats):
        raise RuntimeError(f"{tree} pump: the include server wrote no server line")
    cold = [q for requests, _ in pump_stats for q in requests]
    warm_requests, warm_cpu, warm_server = warm

    def spread(requests):
        walls = [q[0] * 1000 for q in requests]
        if len(walls) < 2:
            return (walls or [None]) * 2
        return statistics.median(walls), statistics.quantiles(walls, n=10)[-1]

    def per_build(f):
        return statistics.median(f(requests, server) for requests, server in pump_stats)

    figures = {
        "tree": tree,
        "jobs": jobs,
        "cpp": cpp_cpu,
        "cpp in build": cpp_in_build,
        "server": per_build(lambda _, server: sum(server)),
        "compilers": per_build(lambda _, server: server[2] + server[3]),
        "answers": per_build(lambda requests, _: sum(q[1] for q in requests)),
        "cold": spread(cold),
        "warm": spread(warm_requests),
        "warm server": warm_cpu[1],
        "plain client": plain_client,
        "pump client": pump_client,
    }
    for requests, server in pump_stats:
        print(f"bench: {tree} pump: {len(requests)} requests "
              f"({sum(q[3] for q in requests)} covered, {sum(q[2] for q in requests)} "
              f"files named), answers {sum(q[0] for q in requests):.3f} s wall, "
              f"{sum(q[1] for q in requests):.4f} s CPU; server user {server[0]:.4f} s, "
              f"system {server[1]:.4f} s, compilers {server[2] + server[3]:.3f} s",
              file=sys.stderr)
    hows = collections.Counter(q[4] for q in warm_requests)
    generations = sorted({q[5] for q in warm_requests})
    print(f"bench: {tree} warm: {len(warm_requests)} requests in the rebuild, answers "
          f"{sum(q[1] for q in warm_requests):.2f} s CPU; server CPU {warm_cpu[0]:.2f} s "
          f"in the first build, {warm_cpu[1]:.2f} s in the rebuild; server line "
          f"{' '.join(f'{x:.2f}' for x in warm_server or ())}; answered "
          f"{', '.join(f'{n} {h}' for h, n in hows.most_common())}; mirror generations "
          f"{generations}", file=sys.stderr)
    # Where the rebuild's answers were not kept ones: the first few in order, to see
    # which change made them (a header the rebuild writes again, a new generation).
    not_kept = [(i, q) for i, q in enumerate(warm_requests) if q[4] != "reply"]
    for i, q in not_kept[:10]:
        print(f"bench: {tree} warm: request {i}: {q[1] * 1e3:.1f} ms CPU, {q[4]}, "
              f"generation {q[5]}, {q[6]}", file=sys.stderr)
    return figures


INCLUDE_HEADER = [
    "tree", "jobs", "cpp CPU s in the plain build", "cpp CPU s (its jobs alone)",
    "include server CPU s (pump build)", "server / cpp in the build", "server / cpp alone",
    "of which compilers s", "of which answers s",
    "request ms median (pump build)", "request ms p90 (pump build)",
    "request ms median (warm rebuild)", "request ms p90 (warm rebuild)",
    "server CPU s (warm rebuild)", "client-side CPU s plain", "client-side CPU s pump",
    "pump / plain",
]


def include_cells(f):
    """The second table's cells for one tree's `include_figures`."""
    # The server's CPU to three places: the target is 0.1 of the preprocessors'.
    return [f["tree"], fmt(f["jobs"]), fmt(f["cpp in build"]), fmt(f["cpp"]),
            f"{f['server']:.3f}", ratio(f["server"], f["cpp in build"], 3),
            ratio(f["server"], f["cpp"], 3), fmt(f["compilers"]), fmt(f["answers"]),
            *(fmt(v) for v in f["cold"]), *(fmt(v) for v in f["warm"]),
            fmt(f["warm server"]), fmt(f["plain client"]), fmt(f["pump client"]),
            ratio(f["pump client"], f["plain client"])]


def wire_rows(farms, work):
    """The table's rows for bytes and packets of a Lua build, without and with lzo, and
    ours in pump mode (`,cpp,lzo`) against distcc 3.4's plain `,lzo` and our own."""
    lua = Lua(work)
    pcap = os.path.join(work, "wire.pcap")
    ours, theirs = farms
    rows = []
    lzo = {}
    for options in ["", ",lzo", ",cpp,lzo"]:
        pump = options == ",cpp,lzo"
        counts = {}
        for name, farm in farms.items():
            if pump and name == theirs:
                continue
            capture = Capture(pcap, farm.ports)
            try:
                build(lua, farm, work, options, pump=pump)
            finally:
                capture.stop()
            counts[name] = wire_counts(pcap, farm.ports)
        if options == ",lzo":
            lzo = counts
        label = f"wire: lua build{options}"
        if pump:
            label = "wire: lua pump build,cpp,lzo"
            counts[theirs] = lzo[theirs]
        rows += [
            (f"{label} KiB client->daemon", counts[ours]["up"] / 1024,
             counts[theirs]["up"] / 1024, None,
             lzo[ours]["up"] / 1024 if pump else None),
            (f"{label} KiB daemon->client", counts[ours]["down"] / 1024,
             counts[theirs]["down"] / 1024, None,
             lzo[ours]["down"] / 1024 if pump else None),
            (f"{label} packets", counts[ours]["packets"], counts[theirs]["packets"], None,
             lzo[ours]["packets"] if pump else None),
        ]
    return rows


class Sshd:
    """A real sshd on a loopback port: root logs in with a key made here and runs our
    distccd --inetd for each job, as a host reached with `@host` would."""

    def __init__(self, work):
        self.dir = tempfile.mkdtemp(dir=work)
        for name in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(self.dir, name)], check=True)
        shutil.copy(os.path.join(self.dir, "user.pub"), os.path.join(self.dir, "authorized"))
        os.makedirs("/run/sshd", exist_ok=True)
        self.port = free_port()
        config = os.path.join(self.dir, "sshd_config")
        open(config, "w").write(
            f"Port {self.port}\nListenAddress 127.0.0.1\n"
            f"HostKey {self.dir}/host\nAuthorizedKeysFile {self.dir}/authorized\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"PidFile {self.dir}/sshd.pid\nMaxStartups 100\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config],
                                     stdin=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "sshd.log"), "w"))
        wait_listening(self.port)
        self.distcc_dir = os.path.join(self.dir, "distcc")
        os.mkdir(self.distcc_dir)

    def env(self, slots):
        """Our client's environment: one SSH host with `slots` jobs, our distccd there."""
        env = dict(os.environ)
        env["DISTCC_HOSTS"] = f"@127.0.0.1/{slots}:{OURS['daemon']}"
        env["DISTCC_SSH"] = (f"ssh -p {self.port} -i {self.dir}/user -o BatchMode=yes "
                             "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                             "-o LogLevel=ERROR")
        env["DISTCC_DIR"] = self.distcc_dir
        for k in ["DISTCC_VERBOSE", "DISTCC_LOG", "DISTCC_FALLBACK"]:
            env.pop(k, None)
        return env

    def cpu(self):
        """CPU seconds of sshd and every session it served (distccd and the compilers
        among them), once the sessions of the jobs that ended are reaped."""
        for _ in range(250):
            if len(group_pids(self.proc.pid)) == 1:
                break
            time.sleep(0.02)
        return process_cpu([self.proc.pid])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def threads_cpu(pids):
    """CPU seconds of the threads of processes, to the nanosecond (/proc schedstat), their
    children not included: a daemon's own work without its compilers'."""
    total = 0
    for pid in pids:
        for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            with contextlib.suppress(OSError):
                total += int(open(stat).read().split()[0])
    return total / 1e9


class Transport:
    """One way from our client to our daemons: `env()` for the client; `cpu()` for the
    daemon side (the daemons with their compilers, or sshd with its sessions), and
    `own()`, the daemons' threads alone (None for SSH, whose sessions come and go)."""

    def __init__(self, name, env, cpu, own):
        self.name, self.env, self.cpu, self.own = name, env, cpu, own


def tls_farm(work):
    """Three daemons of ours serving TLS, with a client whose key they list and which pins
    theirs: the whole set-up a user makes (`--gen-key` on both sides)."""
    keys = tempfile.mkdtemp(dir=work)
    # The daemons read the authorised keys again as their own user.
    os.chmod(keys, 0o755)
    host_key, user_key = os.path.join(keys, "host"), os.path.join(keys, "id_ed25519")
    made = subprocess.run([OURS["daemon"], "--gen-key", host_key], check=True,
                          capture_output=True, text=True).stdout
    fingerprint = made.rsplit("fingerprint is ", 1)[1].strip()
    subprocess.run([OURS["client"], "--gen-key", user_key], check=True, capture_output=True)
    authorized = os.path.join(keys, "authorized_keys")
    shutil.copy(user_key + ".pub", authorized)
    farm = Farm(OURS, work, extra=["--key", host_key, "--authorized-keys", authorized])
    for f in (user_key, user_key + ".pub"):
        shutil.copy(f, farm.distcc_dir)
    with open(os.path.join(farm.distcc_dir, "known_hosts"), "w") as known:
        for port in farm.ports:
            known.write(f"127.0.0.1:{port} {fingerprint}\n")
    return farm


TRANSPORT_HEADER = ["figure", "plain TCP", "TLS", "SSH", "TLS - plain", "TLS / plain",
                    "SSH / plain"]


def transport_rows(work, rounds, per_round, builds):
    """Our client and daemons over plain TCP, TLS with pinned keys, and SSH (a real sshd
    on loopback, `distccd --inetd` per job), in turn: tiny jobs, then Lua builds. Issue 17's
    targets: TLS adds at most 1 ms of CPU per job, client and daemon together, and at most
    5% to Lua's wall time."""
    plain, tls = Farm(OURS, work), tls_farm(work)
    sshd = Sshd(work)
    slots = len(plain.ports)
    ways = [Transport(name, farm.env, lambda f=farm: process_cpu(f.pids()),
                      lambda f=farm: threads_cpu(f.pids()))
            for name, farm in [("plain TCP", plain), ("TLS", tls)]]
    ways.append(Transport("SSH", lambda options="": sshd.env(slots), sshd.cpu, lambda: None))
    try:
        figures = {w.name: {} for w in ways}
        src, compiler = write_job_file(work, "tiny")
        walls = {w.name: [] for w in ways}
        clients = {w.name: [] for w in ways}
        owns = {w.name: [] for w in ways}
        daemon_cpu = {w.name: 0.0 for w in ways}
        daemon_own = {w.name: 0.0 for w in ways}
        # A round runs each way's jobs one after another, as a build's jobs all take one
        # way: interleaved one by one, each TLS job would find the code of its handshake
        # evicted by the SSH job before it, which no build sees.
        for r in range(rounds):
            for w in ways:
                for j in range(per_round):
                    i = r * per_round + j
                    before, own_before = w.cpu(), w.own()
                    wall, cpu, own = run_timed(
                        [OURS["client"], compiler, "-O2", "-c", src, "-o",
                         os.path.join(work, f"t{i % 4}.o")], own=True, env=w.env(), cwd=work)
                    daemon_cpu[w.name] += w.cpu() - before
                    if own_before is not None:
                        daemon_own[w.name] += w.own() - own_before
                    walls[w.name].append(wall)
                    clients[w.name].append(cpu)
                    owns[w.name].append(own)
        jobs = rounds * per_round
        for name, farm in [("plain TCP", plain), ("TLS", tls)]:
            done = sum(open(os.path.join(farm.dir, f"d{p}.log")).read().count("COMPILE_OK")
                       for p in farm.ports)
            if done < jobs:
                raise RuntimeError(f"only {done} of {jobs} tiny jobs compiled over {name}")
        for w in ways:
            f = figures[w.name]
            ssh = w.name == "SSH"
            f["tiny: job wall ms (median)"] = statistics.median(walls[w.name]) * 1000
            f["tiny: client process CPU ms/job"] = statistics.mean(owns[w.name]) * 1000
            f["tiny: daemon threads CPU ms/job (no compilers)"] = (
                None if ssh else daemon_own[w.name] / jobs * 1000)
            f["tiny: client + daemon threads CPU ms/job"] = (
                None if ssh else (sum(owns[w.name]) + daemon_own[w.name]) / jobs * 1000)
            f["tiny: client with children CPU ms/job (ssh too)"] = (
                statistics.mean(clients[w.name]) * 1000)
            f["tiny: daemon side with compilers CPU ms/job (sshd too)"] = (
                daemon_cpu[w.name] / jobs * 1000)
        lua = Lua(work)
        results = {w.name: [] for w in ways}
        reference = None
        for _ in range(builds):
            for w in ways:
                argv = lua.prepare(OURS["client"])
                before = w.cpu()
                wall, cpu = run_timed(argv, log=os.path.join(work, "lua-transport.log"),
                                      cwd=lua.tree, env=w.env())
                results[w.name].append((wall, cpu, w.cpu() - before))
                built = objects(lua.tree)
                reference = reference or built
                if built != reference:
                    print(f"bench: lua over {w.name}: objects differ from plain TCP's",
                          file=sys.stderr)
        for w in ways:
            runs = results[w.name]
            f = figures[w.name]
            f["lua: build wall s (median)"] = statistics.median(r[0] for r in runs)
            f["lua: client CPU s"] = statistics.median(r[1] for r in runs)
            f["lua: daemon-side CPU s"] = statistics.median(r[2] for r in runs)
            f["lua: client + daemon CPU ms/job"] = statistics.median(
                (r[1] + r[2]) for r in runs) / len(reference) * 1000
    finally:
        for farm in (plain, tls):
            farm.stop()
        sshd.stop()
    rows = []
    for figure in figures["plain TCP"]:
        p, t, s = (figures[w.name][figure] for w in ways)
        rows.append([figure, fmt(p), fmt(t), fmt(s), fmt(t - p), ratio(t, p),
                     ratio(s, p) if s is not None else ""])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The cache workloads build each tree eight times: asked for by name only.
    ap.add_argument("--workloads", default=",".join(
        w for w in WORKLOADS if "-cache" not in w and w != "transport"),
                    help="comma-separated, of " + ",".join(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=10, help="rounds of the per-job workloads")
    ap.add_argument("--jobs-per-round", type=int, default=20, help="tiny jobs per round")
    ap.add_argument("--cxx-jobs-per-round", type=int, default=2, help="C++ jobs per round")
    ap.add_argument("--builds", type=int, default=3,
                    help="builds of each tree per implementation (and locally)")
    ap.add_argument("--include-server", choices=["on", "off", "only"], default="on",
                    help="the include server's figures for lua, leveldb and kernel (issue "
                    "15): on, off, or only them (builds with our client alone)")
    ap.add_argument("--tsv", default=os.path.join(ROOT, "bench", "results.tsv"))
    ap.add_argument("--include-tsv", default=os.path.join(ROOT, "bench", "results-include.tsv"),
                    help="where the include server's table goes as TSV")
    ap.add_argument("--cache-tsv", default=os.path.join(ROOT, "bench", "results-cache.tsv"),
                    help="where the compile cache's table goes as TSV")
    ap.add_argument("--transport-tsv",
                    default=os.path.join(ROOT, "bench", "results-transport.tsv"),
                    help="where the transports' table goes as TSV")
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        sys.exit(f"bench: unknown workloads {','.join(sorted(unknown))}")
    if not shutil.which("cargo"):
        sys.exit("bench: cargo is needed to build distcc-rs")
    ensure_installed(workloads)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)
    farms = {impl["name"]: Farm(impl, work) for impl in (OURS, THEIRS)}
    ours, theirs = farms
    rows = []  # (figure, distcc-rs, distcc 3.4, floor)
    floor_rows = []
    include = []  # include_figures, one per tree
    cache = []  # cache_rows, one per tree
    transport = []
    try:
        if "transport" in workloads:
            transport = transport_rows(work, args.rounds, args.jobs_per_round, args.builds)
        for w, per_round in [("tiny", args.jobs_per_round), ("cxx", args.cxx_jobs_per_round)]:
            if w in workloads:
                measured, floor = job_rows(farms, work, w, args.rounds, per_round)
                rows += measured
                floor_rows += floor
        for kind in (Lua, LevelDB, LevelDBClang, LevelDBClangDebug, Kernel):
            if kind.name in workloads:
                measured, figures = build_rows(farms, work, kind, args.builds,
                                               include=args.include_server)
                rows += measured
                if figures:
                    include.append(figures)
        for kind in (Lua, LevelDB, Kernel):
            if f"{kind.name}-cache" in workloads:
                cache.append(cache_rows(farms, work, kind, args.builds))
        if "farm" in workloads:
            pinned = {impl["name"]: Farm(impl, work, daemons=1, cpu=1) for impl in (OURS, THEIRS)}
            try:
                rows += build_rows(pinned, work, FarmLevelDB, args.builds, pump=False)[0]
            finally:
                for f in pinned.values():
                    f.stop()
        if "wire" in workloads:
            rows += wire_rows(farms, work)
        if rows or not (include or cache or transport):
            rows.append(("daemon peak memory MiB", *(peak_memory_kib(f.pids()) / 1024
                                                      for f in farms.values()), None))
    finally:
        for f in farms.values():
            f.stop()
        shutil.rmtree(work, ignore_errors=True)

    # Pump rows put our pump-mode figure in the first column and distcc 3.4's plain mode
    # in the second; their last column is pump against our plain mode.
    header = ["figure", ours, theirs, "ratio", "floor", f"{ours} / floor",
              f"{theirs} / floor", "pump / plain"]
    if rows:
        print_table(header, [[figure, fmt(a), fmt(t), ratio(a, t), fmt(floor), ratio(a, floor),
                              ratio(t, floor), ratio(a, plain[0] if plain else None)]
                             for figure, a, t, floor, *plain in rows + floor_rows], args.tsv)
    if include:
        # The include server against the preprocessors it takes off the client (issue 15).
        if rows:
            print()
        print_table(INCLUDE_HEADER, [include_cells(f) for f in include], args.include_tsv)
    if cache:
        # The compile cache (issue 16).
        if rows or include:
            print()
        print_table(CACHE_HEADER, cache, args.cache_tsv)
    if transport:
        # TLS and SSH against plain TCP (issue 17).
        if rows or include or cache:
            print()
        print_table(TRANSPORT_HEADER, transport, args.transport_tsv)


def print_table(header, lines, tsv_path):
    """Prints a Markdown table and writes it as TSV to `tsv_path`."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    with open(tsv_path, "w") as tsv:
        tsv.write("\t".join(header) + "\n")
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
            tsv.write("\t".join(cells) + "\n")


if __name__ == "__main__":
    main()
