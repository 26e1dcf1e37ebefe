#!/usr/bin/env python3
"""Where the time of a reaction goes, stage by stage, from the inotify read to
the agent's first line of main().

Reads what `gtmd-bench --only latency --keep --gtmd-log info,gtmd::stage=trace`
leaves in each kept latency workspace: gtmd's log (`gtmd.stderr`, with the
trace lines of target `gtmd::stage`, microsecond timestamps), when the bench
wrote each file (`files-landed.log`, CLOCK_REALTIME in ns just before the
writer's last call) and the agent starts (`agent-starts.log`, CLOCK_REALTIME
in ns at the top of the agent's main). Prints, per stage, the median, p90 and
p99 over the files of the case, then the three slowest reactions step by
step (the p99 is made of a few of them).

    scripts/stage-breakdown.py /tmp/gtmd-bench-*-latency
"""

import os
import re
import sys
from datetime import datetime, timezone

LINE = re.compile(r"^(\S+Z)\s+(\w+)\s+(\S+): (.*)$")


def ns(stamp):
    # 2026-11-30T05:13:16.344857Z: microseconds, UTC.
    day, frac = stamp.rstrip("Z").split(".")
    t = datetime.strptime(day, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 10**9 + int(frac.ljust(9, "0")[:9])


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))
    return v[k]


def field(text, name):
    m = re.search(name + r'=("?)([^" ]+)\1', text)
    return m.group(2) if m else None


def chains(log):
    """Per conflict file: the timestamp of each stage, in order."""
    out = {}
    current = None  # the file whose reaction the loop is handling
    task_of = {}
    for raw in open(log, errors="replace"):
        m = LINE.match(raw.strip())
        if not m:
            continue
        stamp, level, target, text = m.groups()
        t = ns(stamp)
        msg = re.split(r" \w+=", text, maxsplit=1)[0]
        if target == "gtmd::stage":
            path = field(text, "path") or ""
            if msg in ("notified", "received"):
                name = path.rsplit("/", 1)[-1]
                if "/conflicts/lat-" in path and "change=Complete" in text:
                    c = out.setdefault(name, {})
                    c.setdefault(msg, t)
                continue
            if msg == "read" and path.startswith("conflicts/lat-"):
                current = path.rsplit("/", 1)[-1]
                out.setdefault(current, {})["read"] = t
                continue
            task = field(text, "task")
            name = task_of.get(task) if task else current
            if name is None or name not in out:
                continue
            c = out[name]
            if msg not in c:
                c[msg] = t
        elif text.startswith("task started"):
            trig = re.search(r"trigger=conflict: conflicts/(\S+)", text)
            task = field(text, "task")
            if trig and task:
                task_of[task] = trig.group(1)
                if trig.group(1) in out:
                    out[trig.group(1)].setdefault("started", t)
    return out


STAGES = [
    ("landed", "notified", "the writer's last call → inotify read in notify's thread"),
    ("notified", "received", "notify thread → event loop (channel, wake-up)"),
    ("received", "read", "settle check, stat, open, read, hash (blake3), parse"),
    ("read", "serialized", "rest of the turn, journal entry serialized"),
    ("serialized", "written", "journal write(2)"),
    ("written", "durable", "journal fdatasync(2), on the sync thread"),
    ("written", "syncing", "  of which: the sync thread woken by the write"),
    ("syncing", "durable", "  of which: the fdatasync(2) call itself"),
    ("written", "handled", "engine (pure): the review task decided"),
    ("handled", "started", "the engine's other actions, `task started` logged"),
    ("started", "rendered", "prompt rendered"),
    ("rendered", "prepared", "argv and env built"),
    ("prepared", "task files written", "prompt and context files, on the writer thread"),
    ("prepared", "writing task files", "  of which: the writer thread woken"),
    ("writing task files", "task files written", "  of which: the two files written"),
    ("prepared", "output ready", "output pipe, gates"),
    ("output ready", "forking", "command built"),
    ("forking", "spawned", "clone + wait at the gates + execve (the spawn returns at the exec)"),
    ("forking", "gates open", "clone → both gates open (entry durable, files written)"),
    ("gates open", "main", "gates open → agent main() (wake-up, execve, loading)"),
    ("forking", "main", "clone → agent main()"),
    ("notified", "main", "total: inotify read → agent main()"),
    ("landed", "main", "the bench's latency: the writer's last call → agent main()"),
]

# The steps a slow reaction is listed with, in the order they happened.
PATH = ["landed", "notified", "received", "read", "serialized", "written",
        "handled", "started", "prepared", "writing task files", "forking",
        "syncing", "durable", "task files written", "gates open", "main"]


def main(dirs):
    for d in dirs:
        if not os.path.exists(f"{d}/gtmd.stderr"):
            # The loop's workspace of a `--compare` run: no gtmd in it.
            print(f"{d}: no gtmd.stderr (not a gtmd workspace), skipped")
            continue
        c = chains(f"{d}/gtmd.stderr")
        for line in open(f"{d}/agent-starts.log"):
            parts = line.split(" ", 2)
            if len(parts) < 3:
                continue
            trig = parts[2].strip().rsplit("/", 1)[-1]
            if trig in c:
                c[trig].setdefault("main", int(parts[1]))
        try:
            for line in open(f"{d}/files-landed.log"):
                name, t = line.split()
                if name in c:
                    c[name]["landed"] = int(t)
        except FileNotFoundError:
            pass  # kept by a gtmd-bench before the file existed
        for v in c.values():
            if "durable" in v and "task files written" in v:
                v["gates open"] = max(v["durable"], v["task files written"])
        print(f"{d}: {len(c)} files")
        print(f"  {'stage':<70} {'p50':>7} {'p90':>7} {'p99':>7}  (ms)")
        for a, b, what in STAGES:
            deltas = [
                (v[b] - v[a]) / 1e6 for v in c.values() if a in v and b in v
            ]
            print(
                f"  {what:<70} {pct(deltas, 50):7.3f} {pct(deltas, 90):7.3f} {pct(deltas, 99):7.3f}"
            )
        start = "landed" if any("landed" in v for v in c.values()) else "notified"
        timed = [(v["main"] - v[start], k) for k, v in c.items() if start in v and "main" in v]
        for total, name in sorted(timed, reverse=True)[:3]:
            v = c[name]
            steps = sorted((s for s in PATH if s in v), key=lambda s: v[s])
            parts = [f"{b} +{(v[b] - v[a]) / 1e6:.3f}" for a, b in zip(steps, steps[1:])]
            print(f"  slow: {name} {total / 1e6:.3f} ms: " + ", ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1:])
