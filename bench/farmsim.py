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
    on hosts known to have a processor free first, least busy first, then hosts not
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

FRESH = 2.0  # how long a client trusts what a host said (src/farm/load.rs)
MAX_REFUSALS = 3  # src/client/build.rs


class Job:
    __slots__ = ("i", "pred", "gap", "offset", "mode", "client", "host", "sent",
                 "received", "input", "succ")


def load_trace(path):
    """The trace's jobs in start order, each with its predecessor and gap (see above)."""
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
            j.host = host_cpu / 1e6 if host_cpu else phase("compile")
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

    def full(self):
        return self.running + len(self.queue) >= self.slots

    def figures(self):
        return (self.running, len(self.queue))

    def compile(self, work, then):
        def start():
            self.running += 1

            def done():
                self.running -= 1
                if self.queue:
                    self.queue.pop(0)()
                then()
            self.pool.run(work, done)
        if self.running < self.slots:
            start()
        else:
            self.queue.append(start)


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
    def start(self):
        for j in self.jobs:
            if j.pred is None:
                self.sim.at(j.offset, lambda j=j: self.release(j))

    def release(self, job):
        if job.mode in ("remote", "pump"):
            self.acquire(job, 0)
        else:
            self.pool.run(job.client, lambda: self.finish(job))

    def finish(self, job):
        self.end = max(self.end, self.sim.now)
        for s in job.succ:
            succ = self.jobs[s]
            self.sim.after(succ.gap, lambda succ=succ: self.release(succ))

    # Slots and hosts.
    def order(self):
        """The free slots, in the order the policy tries them: (host, slot)."""
        free = [(h, s) for h in range(len(self.farm.hosts)) for s in range(self.args.limit)
                if not self.held[h][s]]
        if self.args.policy == "distcc34":
            return sorted(free, key=lambda hs: (hs[1], hs[0]))
        if self.args.policy == "ideal":
            loads = {h: (host.running + len(host.queue)) / host.cores
                     for h, host in enumerate(self.farm.hosts)}
            return sorted(free, key=lambda hs: (loads[hs[0]], hs[0], hs[1]))

        def rank(hs):
            h, s = hs
            share = self.share(h)
            if share is None:
                return (1.0, 1, s, h)
            return (share, 0, h, s)
        return sorted(free, key=rank)

    def share(self, h):
        heard = self.board.get(h)
        if heard is None or self.sim.now - heard[2] >= FRESH:
            return None
        host = self.farm.hosts[h]
        return (heard[0] + heard[1] + 1) / max(1, min(host.cores, host.slots))

    def hear(self, h, running, queued):
        self.board[h] = (running, queued, self.sim.now)

    def acquire(self, job, refusals):
        order = self.order()
        if not order:
            self.waiting.append(lambda: self.acquire(job, refusals))
            return
        h, s = order[0]
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
            self.transfer(job.sent, lambda: host.compile(job.host, reply))

        def reply():
            if policy == "ours":
                self.hear(h, max(0, host.running), len(host.queue))
            self.transfer(job.received, done)

        def done():
            self.let_go(h, s)
            self.finish(job)

        # The client's work (the preprocessor runs while it connects), then the job.
        connect = 0.0 if policy == "ideal" else self.rtt()
        self.pool.run(job.client, lambda: self.sim.after(connect, connected))


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
    for c in clients:
        c.start()
    sim.run()
    return [c.end for c in clients], sum(c.refused for c in clients)


def model_args(**kw):
    defaults = dict(clients=1, hosts=4, cores=8, slots=10, limit=8, policy="ours",
                    client_cores=8, bandwidth=1e9, latency_us=200.0, shared=False, seed=1)
    defaults.update(kw)
    return argparse.Namespace(**defaults)


def predict(trace, **kw):
    args = model_args(**kw)
    jobs, _ = load_trace(trace)
    ends, refused = simulate([jobs] * args.clients, args)
    return max(ends), refused


# Validation on this machine.

def capture(tree, farm, work, label, env_extra=None, pump=False, jobs="-j6"):
    """One traced build of `tree` through `farm`; returns (trace path, wall seconds)."""
    import bench
    trace = os.path.join(work, f"{tree.name}-{label}.trace")
    if os.path.exists(trace):
        os.unlink(trace)
    argv = [jobs if a == bench.MAKE_JOBS else a for a in tree.prepare(bench.OURS["client"])]
    if pump:
        argv = [bench.OURS["pump"]] + argv
    env = farm.env(",cpp,lzo" if pump else "")
    env.update(bench.KBUILD_ENV)
    env["DISTCC_TRACE"] = trace
    env.update(env_extra or {})
    wall, _ = bench.run_timed(argv, log=os.path.join(work, f"{tree.name}-{label}.log"),
                              cwd=tree.tree, env=env)
    return trace, wall


def validate(args):
    """Builds the tree with one and with three loopback daemons (one slot each), traces
    each, and predicts every set-up from every trace."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench
    import tempfile
    work = tempfile.mkdtemp(prefix="farmsim-")
    tree = {"lua": bench.Lua, "leveldb": bench.LevelDB}[args.workload](work)
    setups = {1: bench.Farm(bench.OURS, work, daemons=1), 3: bench.Farm(bench.OURS, work, 3)}
    measured = {n: [] for n in setups}
    traces = {n: [] for n in setups}
    try:
        for b in range(args.builds):
            for n, farm in setups.items():
                trace, wall = capture(tree, farm, work, f"{n}d-{b}")
                measured[n].append(wall)
                traces[n].append(trace)
    finally:
        for farm in setups.values():
            farm.stop()
    rows = []
    for src in setups:
        for dst in setups:
            predicted = []
            for trace in traces[src]:
                jobs, span = load_trace(trace)
                args_m = model_args(hosts=dst, cores=2, slots=1, limit=1, policy="ours",
                                    client_cores=2, bandwidth=1e10, latency_us=30.0,
                                    shared=True)
                ends, _ = simulate([jobs], args_m)
                predicted.append(max(ends) + (0 if True else span))
            spans = [load_trace(t)[1] for t in traces[dst]]
            m = sorted(spans)[len(spans) // 2]
            p = sorted(predicted)[len(predicted) // 2]
            rows.append((src, dst, m, p, p / m))
    print(f"| trace from | predicted for | measured span s | predicted s | ratio |")
    print("|---|---|---|---|---|")
    for src, dst, m, p, r in rows:
        print(f"| {src} daemon(s) | {dst} daemon(s) | {m:.2f} | {p:.2f} | {r:.3f} |")
    print(f"(walls measured: {measured}; traces in {work})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict")
    p.add_argument("trace")
    for name, default in model_args().__dict__.items():
        if name in ("shared",):
            p.add_argument("--shared", action="store_true")
        elif name == "policy":
            p.add_argument("--policy", default=default, choices=["ours", "distcc34", "ideal"])
        else:
            p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    v = sub.add_parser("validate")
    v.add_argument("--workload", default="lua", choices=["lua", "leveldb"])
    v.add_argument("--builds", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "predict":
        kw = {k: v for k, v in vars(args).items() if k not in ("cmd", "trace")}
        makespan, refused = predict(args.trace, **kw)
        print(f"{makespan:.2f} s ({refused} refusals)")
    elif args.cmd == "validate":
        validate(args)


if __name__ == "__main__":
    main()
