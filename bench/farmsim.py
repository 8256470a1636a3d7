#!/usr/bin/env python3
"""A farm simulator fed by real builds' traces (`DISTCC_TRACE`).

    python3 bench/farmsim.py predict TRACE [--clients 1] [--hosts 4] [--cores 8]
                             [--slots 10] [--limit 8] [--policy ours|distcc34|ideal]
                             [--client-cores 8] [--bandwidth 1e9] [--latency-us 200]
    python3 bench/farmsim.py validate [--workload lua] [--builds 3]
    python3 bench/farmsim.py kernel [--builds 1]
    python3 bench/farmsim.py balance TRACE [--clients 20] [--hosts 200] [--cores 8]

A trace holds one line per job (see distcc(1), DISTCC_TRACE): when make started it and
when it ended, what it cost here (distcc's CPU, the preprocessor's, the include
analysis) and on the host (our daemon's notes: the compile's processor time), and the
bytes it moved. The replay keeps the build's shape as make released it: each job waited
for the job that ended last before it started (its predecessor), and then for the gap
measured between them (make's own work, the shell, links not traced). On a modelled farm
(clients with their cores and link, hosts with cores and `--jobs` slots, processor
sharing on every machine, a FIFO queue at each daemon) each job then goes through the
client's slot locks, a host chosen by a policy, the client's work, the link, the host's
queue and compile, and back; its successors are released when it ends.

Policies:
  * distcc34: distcc 3.4's client: each client takes the first free slot of its host list
    (every client has the same list), slot 0 of every host before slot 1 of any; when
    every slot is taken it waits for one; hosts queue what exceeds their slots.
  * ours: our client (src/farm/pick.rs): a board of what each host said, per client (the
    client's own jobs' admissions, refusals and replies, trusted for 2 s), slots tried
    on hosts known to have a slot free first, least busy first, then hosts not
    heard from lately in distcc 3.4's order, then full ones; a host that is asked costs
    one round trip, and a full one turns the job away (three times at most, then the job
    waits at the least busy).
  * ideal: a scheduler that knows every host's load at no cost and sends each job to the
    least busy host: perfect packing, the yardstick.

`validate` builds a tree here (our client, our daemons on loopback) while tracing it,
in several set-ups, and compares the wall time each trace predicts for every set-up with
the one measured. Here the daemons share the client's two processors, which the model
then does too (`--shared`). `kernel` traces the Linux tinyconfig build (plain, pump, and
a warm cache) and prints the tables of bench/RESULTS.md. Only loopback is used.
"""

import argparse
import heapq
import json
import math
import os
import random
import sys
import time

FRESH = 2.0  # how long a client trusts what a host said (src/farm/load.rs)
MAX_REFUSALS = 3  # src/client/build.rs


class Job:
    __slots__ = ("i", "pred", "gap", "offset", "mode", "client", "host", "sent",
                 "received", "input", "succ")


def load_trace(path):
    """The trace's jobs in start order, each with its predecessor and gap (see above)."""
    try:
        meta = json.load(open(path + ".meta"))
    except (OSError, ValueError):
        meta = {}
    daemon = meta.get("daemon_per_job", 0.0)
    records = []
    for line in open(path):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("v") == 1:
            records.append(r)
    records.sort(key=lambda r: r["start"])
    if not records:
        raise SystemExit(f"farmsim: no records in {path}")
    first = records[0]["start"]
    by_end = sorted(range(len(records)), key=lambda i: records[i]["end"])
    jobs = []
    ended = 0  # jobs in by_end that ended before the current start
    last = None
    for i, r in enumerate(records):
        while ended < len(by_end) and records[by_end[ended]]["end"] <= r["start"]:
            last = by_end[ended]
            ended += 1
        j = Job()
        j.i = i
        j.pred = last
        j.gap = (r["start"] - records[last]["end"]) / 1e6 if last is not None else 0.0
        j.offset = (r["start"] - first) / 1e6
        j.mode = r["mode"]
        j.input = r["input"]
        phase = lambda name: sum(b - a for n, a, b in r["phases"] if n == name) / 1e6
        own = r["cpu_us"] / 1e6
        children = r["children_cpu_us"] / 1e6
        if j.mode in ("remote", "pump"):
            # Here: distcc and the preprocessor (plain) or the include analysis (pump,
            # done by the include server, whose time the request's wall shows).
            j.client = own + children + (phase("include") if j.mode == "pump" else 0.0)
            host_cpu = r.get("host_cpu_us")
            j.host = (host_cpu / 1e6 + daemon) if host_cpu else phase("compile")
            j.sent = r.get("sent") or 0
            j.received = r.get("received") or 0
        else:
            # Compiled here, a cache hit, or a failure: all of it on the client.
            j.client = own + children + (phase("include") if j.mode == "cache" else 0.0)
            j.host = 0.0
            j.sent = j.received = 0
        j.succ = []
        jobs.append(j)
    for j in jobs:
        if j.pred is not None:
            jobs[j.pred].succ.append(j.i)
    # The gaps are the build's other commands, which took `other_cpu` in all; at the
    # capture they also waited for processors. Each gap becomes its share of that work,
    # run on the client's processors, so that the model makes the waiting again.
    gaps = sum(j.gap for j in jobs)
    if "other_cpu" in meta and gaps > 0:
        share = min(1.0, meta["other_cpu"] / gaps)
        for j in jobs:
            j.gap *= share
    span = (max(r["end"] for r in records) - first) / 1e6
    return jobs, span


class Sim:
    """The event loop: a heap of (time, sequence, action)."""

    def __init__(self):
        self.now = 0.0
        self.events = []
        self.seq = 0

    def at(self, t, action):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, action))

    def after(self, dt, action):
        self.at(self.now + dt, action)

    def run(self):
        while self.events:
            t, _, action = heapq.heappop(self.events)
            self.now = t
            action()


class Pool:
    """Processors shared by whatever runs on them: n tasks on c cores each progress at
    min(1, c/n) seconds of work per second."""

    def __init__(self, sim, cores):
        self.sim, self.cores = sim, cores
        self.tasks = {}
        self.seq = 0
        self.version = 0
        self.last = 0.0

    def _advance(self):
        dt = self.sim.now - self.last
        self.last = self.sim.now
        if self.tasks and dt > 0:
            rate = min(1.0, self.cores / len(self.tasks))
            for t in self.tasks.values():
                t[0] -= dt * rate

    def _schedule(self):
        self.version += 1
        if not self.tasks:
            return
        rate = min(1.0, self.cores / len(self.tasks))
        soonest = min(t[0] for t in self.tasks.values())
        version = self.version
        self.sim.after(max(0.0, soonest) / rate, lambda: self._check(version))

    def _check(self, version):
        if version != self.version:
            return
        self._advance()
        done = [k for k, t in self.tasks.items() if t[0] <= 1e-9]
        callbacks = [self.tasks.pop(k)[1] for k in done]
        self._schedule()
        for cb in callbacks:
            cb()

    def run(self, work, then):
        if work <= 0:
            self.sim.after(0.0, then)
            return
        self._advance()
        self.seq += 1
        self.tasks[self.seq] = [work, then]
        self._schedule()


class Host:
    """A daemon: `slots` jobs at once on its processors, the rest queued, first come first
    served."""

    def __init__(self, sim, index, cores, slots, pool=None):
        self.index, self.cores, self.slots = index, cores, slots
        self.pool = pool or Pool(sim, cores)
        self.running = 0
        self.queue = []
        # Jobs sent its way and not there yet, which the ideal scheduler counts.
        self.promised = 0

    def full(self):
        return self.running + len(self.queue) >= self.slots

    def figures(self):
        return (self.running, len(self.queue))

    def serve(self, then):
        """A worker for a connection (it holds it from the request to the reply's end):
        at once if one is free, else in turn."""
        if self.running < self.slots:
            self.running += 1
            then()
        else:
            self.queue.append(then)

    def done(self):
        """A worker is free: the next connection queued gets it."""
        if self.queue:
            self.queue.pop(0)()
        else:
            self.running -= 1


class Client:
    """One machine running the build: its processors, its link, its slot locks (each host
    `limit` slots) and, for our policy, its board."""

    def __init__(self, sim, farm, index, jobs, args, pool=None):
        self.sim, self.farm, self.index, self.args = sim, farm, index, args
        self.pool = pool or Pool(sim, args.client_cores)
        self.jobs = jobs
        self.held = [[False] * args.limit for _ in farm.hosts]
        self.waiting = []
        self.board = {}
        self.end = 0.0
        self.refused = 0
        self.link_free = 0.0

    # The build's shape.
    def start(self, at=0.0):
        self.began = at
        for j in self.jobs:
            if j.pred is None:
                self.sim.at(at + j.offset, lambda j=j: self.release(j))

    def release(self, job):
        if job.mode not in ("remote", "pump"):
            self.pool.run(job.client, lambda: self.finish(job))
        elif self.args.policy == "distcc34":
            # distcc 3.4 takes a slot, then preprocesses while holding it.
            self.acquire(job, 0)
        else:
            # Ours preprocesses while it waits for a slot (or while it connects).
            self.pool.run(job.client, lambda: self.acquire(job, 0))

    def finish(self, job):
        self.end = max(self.end, self.sim.now - self.began)
        for s in job.succ:
            succ = self.jobs[s]
            self.pool.run(succ.gap, lambda succ=succ: self.release(succ))

    # Slots and hosts.
    def choose(self):
        """The free slot the policy tries first, (host, slot); `None` when all are held."""
        best = None
        for h, held in enumerate(self.held):
            free = [s for s, taken in enumerate(held) if not taken]
            if not free:
                continue
            s = free[0]
            if self.args.policy == "distcc34":
                rank = (s, h)
            elif self.args.policy == "ideal":
                host = self.farm.hosts[h]
                rank = ((host.running + len(host.queue) + host.promised) / host.cores, h)
            else:
                known = self.rank(h)
                if known is None:
                    rank = (1, 0.0, s, h)
                else:
                    rank = (2 if known[0] else 0, known[1], h, s)
            if best is None or rank < best[0]:
                best = (rank, h, s)
        return best and best[1:]

    def rank(self, h):
        """As `Board::rank`: (whether the host is full, its jobs per processor) as last
        heard, if fresh."""
        heard = self.board.get(h)
        if heard is None or self.sim.now - heard[2] >= FRESH:
            return None
        host = self.farm.hosts[h]
        full = heard[0] + heard[1] >= host.slots
        return full, (heard[0] + heard[1] + 1) / max(1, min(host.cores, host.slots))

    def hear(self, h, running, queued):
        self.board[h] = (running, queued, self.sim.now)

    def acquire(self, job, refusals):
        chosen = self.choose()
        if not chosen:
            self.waiting.append(lambda: self.acquire(job, refusals))
            return
        h, s = chosen
        self.held[h][s] = True
        self.run(job, h, s, refusals)

    def let_go(self, h, s):
        self.held[h][s] = False
        if self.waiting:
            self.waiting.pop(0)()

    def rtt(self):
        return self.args.latency_us * 2e-6

    def transfer(self, nbytes, then):
        """Sends over this client's link: one way's latency, and the bytes in turn."""
        start = max(self.sim.now, self.link_free)
        self.link_free = start + nbytes * 8 / self.args.bandwidth
        self.sim.at(self.link_free + self.args.latency_us * 1e-6, then)

    def run(self, job, h, s, refusals):
        host = self.farm.hosts[h]
        policy = self.args.policy

        def connected():
            if policy == "ours":
                # The ask's round trip, then the door's answer.
                may_refuse = refusals < MAX_REFUSALS
                if may_refuse and host.full():
                    self.hear(h, *host.figures())
                    self.refused += 1

                    def again():
                        host.promised -= 1
                        self.let_go(h, s)
                        self.acquire(job, refusals + 1)
                    self.sim.after(self.rtt(), again)
                    return
                running, queued = host.figures()
                if running < host.slots:
                    running += 1
                else:
                    queued += 1
                self.hear(h, running, queued)
                self.sim.after(self.rtt(), send)
            else:
                send()

        def send():
            host.promised -= 1
            host.serve(lambda: self.transfer(
                job.sent, lambda: host.pool.run(job.host, reply)))

        def reply():
            self.transfer(job.received, done)

        def done():
            host.done()
            if policy == "ours":
                self.hear(h, host.running, len(host.queue))
            self.let_go(h, s)
            self.finish(job)

        host.promised += 1
        # TCP's handshake (not through `validate`'s proxy, which delays data alone).
        connect = self.rtt() if self.args.connect_rtt else 0.0
        if policy == "distcc34":
            self.pool.run(job.client, lambda: self.sim.after(connect, connected))
        else:
            self.sim.after(0.0 if policy == "ideal" else connect, connected)


class Farm:
    def __init__(self, sim, args, shared=None):
        self.hosts = [Host(sim, i, args.cores, args.slots, shared) for i in range(args.hosts)]


def simulate(traces, args):
    """Replays each client's trace on the farm `args` describes; returns each client's
    makespan (seconds from the build's first job to its last end) and the refusals."""
    sim = Sim()
    shared = Pool(sim, args.client_cores) if args.shared else None
    farm = Farm(sim, args, shared)
    clients = [Client(sim, farm, i, jobs, args, shared) for i, jobs in enumerate(traces)]
    # Builds on different machines do not start in the same microsecond.
    spread = random.Random(1)
    for i, c in enumerate(clients):
        c.start(spread.uniform(0.0, args.spread) if i else 0.0)
    sim.run()
    return [c.end for c in clients], sum(c.refused for c in clients)


def model_args(**kw):
    defaults = dict(clients=1, hosts=4, cores=8, slots=10, limit=8, policy="ours",
                    client_cores=8, bandwidth=1e9, latency_us=100.0, shared=False,
                    connect_rtt=True, spread=1.0)
    defaults.update(kw)
    return argparse.Namespace(**defaults)


def predict(trace, **kw):
    args = model_args(**kw)
    jobs, _ = load_trace(trace)
    ends, refused = simulate([jobs] * args.clients, args)
    return max(ends), refused


# Validation on this machine.

def capture(tree, farm, work, label, env_extra=None, pump=False, jobs="-j6", fresh=True):
    """One traced build of `tree` through `farm` (laid out afresh unless told); returns
    (trace path, wall seconds). Written beside the trace (`.meta`): the daemons' own
    processor time per job, beyond their compilers' that the trace holds, which the
    model adds to each job's work on its host; and the processor time of the build's
    other commands (make, the shell, Kbuild's tools), which it spreads over the gaps."""
    import bench
    trace = os.path.join(work, f"{tree.name}-{label}.trace")
    if os.path.exists(trace):
        os.unlink(trace)
    argv = tree.prepare(bench.OURS["client"]) if fresh else tree.argv
    tree.argv = argv
    argv = [jobs if a == bench.MAKE_JOBS else a for a in argv]
    if pump:
        argv = [bench.OURS["pump"]] + argv
    env = farm.env(",cpp,lzo" if pump else "")
    env.update(bench.KBUILD_ENV)
    env["DISTCC_TRACE"] = trace
    env.update(env_extra or {})
    before = bench.process_cpu(farm.pids())
    wall, cpu = bench.run_timed(argv, log=os.path.join(work, f"{tree.name}-{label}.log"),
                                cwd=tree.tree, env=env)
    daemons = bench.process_cpu(farm.pids()) - before
    records = [json.loads(line) for line in open(trace)]
    remote = [r for r in records if r["mode"] in ("remote", "pump")]
    compilers = sum(r.get("host_cpu_us") or 0 for r in remote) / 1e6
    traced = sum(r["cpu_us"] + r["children_cpu_us"] for r in records) / 1e6
    meta = {"daemon_per_job": max(0.0, daemons - compilers) / max(1, len(remote)),
            "other_cpu": max(0.0, cpu - traced), "wall": wall}
    with open(trace + ".meta", "w") as f:
        json.dump(meta, f)
    return trace, wall


class DelayProxy:
    """A LAN's latency on loopback (this machine's kernel has no netem): a proxy in front
    of each port that holds every chunk `delay` seconds, each way, in order."""

    def __init__(self, ports, delay):
        import asyncio
        import threading
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.ports = {}
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            for port in ports:
                server = self.loop.run_until_complete(asyncio.start_server(
                    lambda r, w, port=port: self.connect(r, w, port), "127.0.0.1", 0))
                self.ports[port] = server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
        threading.Thread(target=serve, daemon=True).start()
        ready.wait()

    async def connect(self, reader, writer, port):
        import asyncio
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))

    async def pipe(self, reader, writer):
        import asyncio
        queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()
        sender = asyncio.ensure_future(deliver())
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((self.loop.time() + self.delay, data or None))
            if not data:
                break
        await sender

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


class Delayed:
    """A farm seen through a `DelayProxy`."""

    def __init__(self, farm, delay):
        self.farm, self.proxy = farm, DelayProxy(farm.ports, delay)

    def env(self, options=""):
        env = self.farm.env(options)
        env["DISTCC_HOSTS"] = " ".join(f"127.0.0.1:{self.proxy.ports[p]}/1{options}"
                                       for p in self.farm.ports)
        return env

    def pids(self):
        return self.farm.pids()


def validate(args):
    """Builds the tree with one and with two loopback daemons (one slot each), with and
    without `--delay-ms` of latency each way, tracing each build, and predicts every
    set-up from every trace of the same latency and from the other latency's."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench
    import tempfile
    work = tempfile.mkdtemp(prefix="farmsim-")
    # The daemons give up root: they must reach their whitelists under it.
    os.chmod(work, 0o755)
    tree = {"lua": bench.Lua, "leveldb": bench.LevelDB}[args.workload](work)
    farms = {n: bench.Farm(bench.OURS, work, daemons=n) for n in (1, 2)}
    delay = args.delay_ms / 1e3
    setups = {}
    for n, farm in farms.items():
        setups[(n, 0.0)] = farm
        setups[(n, delay)] = Delayed(farm, delay)
    traces = {k: [] for k in setups}
    try:
        for b in range(args.builds):
            for (n, d), farm in setups.items():
                traces[(n, d)].append(capture(tree, farm, work, f"{n}d-{d * 1e3:g}ms-{b}")[0])
    finally:
        for farm in farms.values():
            farm.stop()
    median = lambda v: sorted(v)[len(v) // 2]
    print("| trace of | predicted for | measured s | predicted s | ratio |")
    print("|---|---|---|---|---|")
    name = lambda n, d: f"{n} daemon{'s' if n > 1 else ''}, {d * 1e3:g} ms"
    for dst in setups:
        measured = median([load_trace(t)[1] for t in traces[dst]])
        for src in setups:
            if src[1] != dst[1] and src[0] != dst[0]:
                continue
            predicted = []
            for trace in traces[src]:
                jobs, _ = load_trace(trace)
                # This machine: the daemons share the client's two processors.
                m = model_args(hosts=dst[0], cores=2, slots=1, limit=1, policy="ours",
                               client_cores=2, bandwidth=1e10,
                               latency_us=30.0 + dst[1] * 1e6, shared=True,
                               connect_rtt=False)
                predicted.append(max(simulate([jobs], m)[0]))
            p = median(predicted)
            print(f"| {name(*src)} | {name(*dst)} | {measured:.2f} | {p:.2f} | "
                  f"{p / measured:.3f} |")
    print(f"(traces in {work})")


def kernel(args):
    """Traces the Linux tinyconfig build with `make -j64` through three loopback daemons:
    plain mode, pump mode, and a warm cache (a cold build first, then `make clean`)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench
    work = args.work
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    tree = bench.Kernel(work)
    farm = bench.Farm(bench.OURS, work, 3)
    walls = {}
    try:
        walls["plain"] = capture(tree, farm, work, "plain", jobs="-j64")[1]
        walls["pump"] = capture(tree, farm, work, "pump", pump=True, jobs="-j64")[1]
        cache = {"DISTCC_CACHE_DIR": os.path.join(work, "cache")}
        walls["cold"] = capture(tree, farm, work, "cache-cold", cache, jobs="-j64")[1]
        tree.clean()
        walls["warm"] = capture(tree, farm, work, "cache-warm", cache, jobs="-j64",
                                fresh=False)[1]
    finally:
        farm.stop()
    print(json.dumps(walls))


def tables(args):
    """The predicted wall time of the traced kernel builds (plain, pump, warm cache) on
    1, 4, 16 and 64 hosts of 8 cores over 1 Gbit/s, with our policy and distcc 3.4's."""
    traces = {mode: os.path.join(args.work, f"kernel-{name}.trace")
              for mode, name in [("plain", "plain"), ("pump", "pump"),
                                 ("warm cache", "cache-warm")]}
    loaded = {mode: load_trace(t)[0] for mode, t in traces.items()}
    print("| hosts x 8 cores | " + " | ".join(f"{m}, ours s | {m}, 3.4's policy s"
                                             for m in loaded) + " |")
    print("|---" * (1 + 2 * len(loaded)) + "|")
    for hosts in args.hosts:
        cells = []
        for jobs in loaded.values():
            for policy in ("ours", "distcc34"):
                a = model_args(hosts=hosts, policy=policy)
                cells.append(f"{max(simulate([jobs], a)[0]):.1f}")
        print(f"| {hosts} | " + " | ".join(cells) + " |")


def balance(args):
    """`--clients` clients, each replaying the trace (its own build of the same tree) at
    once, on `--hosts` hosts of `--cores` cores: the makespan with each policy."""
    jobs, _ = load_trace(args.trace)
    print(f"| {args.clients} clients, {args.hosts} hosts x {args.cores} cores | makespan s "
          "| mean client s | against ideal | refusals |")
    print("|---|---|---|---|---|")
    ideal = None
    for policy in ("ideal", "ours", "distcc34"):
        a = model_args(hosts=args.hosts, cores=args.cores, slots=args.cores + 2,
                       limit=args.cores, policy=policy)
        ends, refused = simulate([jobs] * args.clients, a)
        ideal = ideal or max(ends)
        print(f"| {policy} | {max(ends):.1f} | {sum(ends) / len(ends):.1f} "
              f"| {max(ends) / ideal:.3f} | {refused} |")


SLOW_GCC = "#!/bin/sh\n# A slow host: every compile starts late.\nsleep {delay}\nexec /usr/bin/{name} \"$@\"\n"


def two_clients(args):
    """Two clients, each building its own Lua tree with `make -j4`, at once, against two
    loopback daemons, the first in their host list slow (its compiler starts `--delay`
    seconds late, and it has `--slow-slots` slots; the other `--slots`), each listed
    with four slots. Side by side, round after round: our client
    and daemons (our policy), our client with distcc 3.4's daemons (which never tell
    their load: distcc 3.4's order, with our client), and distcc 3.4 on both sides.
    Prints each set-up's median wall time for the two builds together, after a first
    round that is not counted."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench
    import subprocess
    import tempfile
    work = tempfile.mkdtemp(prefix="farmsim-two-")
    # distcc 3.4's daemon opens its log once it is its own user.
    os.chmod(work, 0o777)
    triplet = subprocess.check_output(["gcc", "-dumpmachine"], text=True).strip()
    names = ["gcc", "cc", f"{triplet}-gcc"]
    slow = os.path.join(work, "slow")
    os.mkdir(slow)
    for name in names:
        path = os.path.join(slow, name)
        with open(path, "w") as f:
            f.write(SLOW_GCC.format(delay=args.delay, name="gcc"))
        os.chmod(path, 0o755)
    started = []

    def daemon(impl, is_slow):
        port = bench.free_port()
        listed = os.path.join(work, f"whitelist-{port}")
        os.mkdir(listed)
        os.chmod(listed, 0o755)
        for name in names:
            target = os.path.join(slow, name) if is_slow else f"/usr/bin/{name}"
            os.symlink(target, os.path.join(listed, name))
        env = dict(os.environ)
        if is_slow:
            env["DISTCCD_PATH"] = f"{slow}:/usr/bin:/bin"
            env["PATH"] = f"{slow}:{env['PATH']}"
        argv = [impl["daemon"], "--daemon", "--no-detach", "--listen", "127.0.0.1",
                "--port", str(port), "--allow", "127.0.0.1", "--jobs",
                str(args.slow_slots if is_slow else args.slots),
                "--log-file", os.path.join(work, f"d{port}.log")]
        if impl is bench.OURS:
            argv += ["--whitelist-dir", listed]
        # A group of its own: distcc 3.4's daemon leaves preforked children behind.
        started.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True))
        bench.wait_listening(port)
        return port

    setups = {}
    try:
        ours = [daemon(bench.OURS, True), daemon(bench.OURS, False)]
        theirs = [daemon(bench.THEIRS, True), daemon(bench.THEIRS, False)]
        setups = {
            "distcc-rs, our policy": (bench.OURS, ours),
            "distcc-rs client, distcc 3.4's daemons (3.4's order)": (bench.OURS, theirs),
            "distcc 3.4 on both sides": (bench.THEIRS, theirs),
        }
        trees = [bench.Lua(os.path.join(work, f"c{i}")) for i in range(2)]
        for i, t in enumerate(trees):
            os.makedirs(os.path.dirname(t.tree), exist_ok=True)
        walls = {name: [] for name in setups}
        # A first round, not counted, warms the page cache, the daemons' probes of
        # their compilers, and the clients' boards, as a user's earlier builds have.
        for round in range(args.builds + 1):
            for name, (client, ports) in setups.items():
                procs = []
                start = time.perf_counter()
                for i, tree in enumerate(trees):
                    argv = [a if a != bench.MAKE_JOBS else "-j4" for a in
                            tree.prepare(client["client"])]
                    env = dict(os.environ)
                    env["DISTCC_HOSTS"] = " ".join(f"127.0.0.1:{p}/4" for p in ports)
                    env["DISTCC_DIR"] = os.path.join(work, f"c{i}", "distcc")
                    env["DISTCC_TRACE"] = os.path.join(work, f"r{round}-{client['name']}-"
                                                             f"{ports[0]}-c{i}.trace")
                    for k in ["DISTCC_VERBOSE", "DISTCC_LOG", "DISTCC_FALLBACK"]:
                        env.pop(k, None)
                    log = open(os.path.join(work, f"c{i}.log"), "w")
                    procs.append(subprocess.Popen(argv, cwd=tree.tree, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT))
                codes = [p.wait() for p in procs]
                wall = time.perf_counter() - start
                print(f"farmsim: round {round}, {name}: {wall:.2f} s", file=sys.stderr)
                if round:
                    walls[name].append(wall)
                if any(codes):
                    raise SystemExit(f"farmsim: a build failed under {name}: see {work}")
        print(f"(traces in {work})", file=sys.stderr)
        print(f"| two Lua builds at once, slow host first (+{args.delay} s a compile) "
              f"| wall s (median of {args.builds}) | against our policy |")
        print("|---|---|---|")
        base = sorted(walls["distcc-rs, our policy"])[args.builds // 2]
        for name, w in walls.items():
            m = sorted(w)[args.builds // 2]
            print(f"| {name} | {m:.2f} | {m / base:.2f} |")
    finally:
        for p in started:
            os.killpg(p.pid, 9)
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict")
    p.add_argument("trace")
    for name, default in model_args().__dict__.items():
        if name == "shared":
            p.add_argument("--shared", action="store_true",
                           help="the hosts share the client's processors (this machine)")
        elif name == "connect_rtt":
            continue
        elif name == "policy":
            p.add_argument("--policy", default=default, choices=["ours", "distcc34", "ideal"])
        else:
            p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    v = sub.add_parser("validate")
    v.add_argument("--workload", default="lua", choices=["lua", "leveldb"])
    v.add_argument("--builds", type=int, default=3)
    v.add_argument("--delay-ms", type=float, default=2.0)
    tb = sub.add_parser("tables")
    tb.add_argument("--work", default="/tmp/farmsim-kernel")
    tb.add_argument("--hosts", type=int, nargs="+", default=[1, 4, 16, 64])
    b = sub.add_parser("balance")
    b.add_argument("trace")
    b.add_argument("--clients", type=int, default=20)
    b.add_argument("--hosts", type=int, default=200)
    b.add_argument("--cores", type=int, default=8)
    t = sub.add_parser("two-clients")
    t.add_argument("--builds", type=int, default=3)
    t.add_argument("--delay", type=float, default=0.3)
    t.add_argument("--slots", type=int, default=4)
    t.add_argument("--slow-slots", type=int, default=1)
    k = sub.add_parser("kernel")
    k.add_argument("--work", default="/tmp/farmsim-kernel")
    args = ap.parse_args()
    if args.cmd == "predict":
        kw = {k: v for k, v in vars(args).items() if k not in ("cmd", "trace")}
        makespan, refused = predict(args.trace, **kw)
        print(f"{makespan:.2f} s ({refused} refusals)")
    elif args.cmd == "validate":
        validate(args)
    elif args.cmd == "kernel":
        kernel(args)
    elif args.cmd == "two-clients":
        two_clients(args)
    elif args.cmd == "tables":
        tables(args)
    elif args.cmd == "balance":
        balance(args)


if __name__ == "__main__":
    main()
