#!/usr/bin/env python3
"""soak: many clients against one private chroma2d for a long time.

Each client (its own Session: its own connection for the whole run)
submits random events: point sources and explicit photons of random sizes,
random options, some with short deadlines, some cancelled, half the rounds
several to a message (submit_many); now and then a
client process (c2-test-client) is killed with events in flight. (Sessions
opened and closed by the thousand are the subject of
test_sessions_opened_and_closed_from_threads.) Every result is checked (photon counts,
hits sorted and within the detector's channels, end states consistent with
the hits) and every 10th against the in-process engine bit for bit. The
daemon's resident memory and open file descriptors are sampled; the last
third of the run must not rise above the middle third (peaks and means).

    build/venv/bin/python tools/soak.py [--seconds S] [--clients N]

Prints a table of samples and ends with the test runners' summary line.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import threading
import time

import numpy as np

import chroma2
from chroma2 import flags

PMTS = 300
TEST_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin", "c2-test-client")


def daemon_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def daemon_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Soak:
    def __init__(self, url, seconds, engine):
        self.url = url
        self.end = time.monotonic() + seconds
        self.engine = engine
        self.lock = threading.Lock()
        self.counts = {"results": 0, "compared": 0, "deadline": 0, "cancelled": 0, "busy": 0, "dropped": 0,
                       "groups": 0}
        self.errors = []

    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)

    def event(self, rng, k):
        n = int(rng.integers(100, 30000))
        want = ("hits", "photons", "channels") if rng.random() < 0.3 else ("hits", "channels")
        if rng.random() < 0.5:
            pos = rng.uniform(-3000, 3000, 3)
            ev = chroma2.EventDescriptor(sources=[chroma2.Source(tuple(pos), n, wavelength=float(rng.uniform(350, 550)))],
                                         seed=int(rng.integers(0, 2**63)), event_id=k, want=want,
                                         priority=int(rng.integers(-10, 11)))
        else:
            ph = chroma2.Photons.isotropic(n, tuple(rng.uniform(-2000, 2000, 3)), float(rng.uniform(380, 500)),
                                           seed=int(rng.integers(0, 2**31)))
            ev = chroma2.EventDescriptor(photons=ph, seed=int(rng.integers(0, 2**63)), event_id=k, want=want)
        return ev, n

    def check(self, ev, n, r):
        h = r.hits
        if r.counters["photons"] != n:
            return f"event {ev.event_id}: {r.counters['photons']} photons for {n}"
        if len(h) and ((np.diff(h["photon_id"].astype(np.int64)) <= 0).any() or h["channel"].min() < 0 or
                       h["channel"].max() >= PMTS):
            return f"event {ev.event_id}: hits unsorted or outside the channels"
        if r.channels is not None and int(r.channels["count"].sum()) != len(h):
            return f"event {ev.event_id}: channel counts disagree with the hits"
        if r.photons is not None:
            det = (r.photons.flags & np.uint32(flags.SURFACE_DETECT)) != 0
            if int(det.sum()) != len(h) or not np.array_equal(np.flatnonzero(det), h["photon_id"]):
                return f"event {ev.event_id}: end states disagree with the hits"
        return None

    def kill_a_client(self, rng):
        """A client process killed with events in flight (tests/test_client.c)."""
        p = subprocess.Popen([TEST_CLIENT, self.url, str(int(rng.integers(1, 6))), "20000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.05, 0.3)))
        p.kill()
        p.wait()
        self.count("dropped")

    def client(self, cid):
        rng = np.random.default_rng(cid)
        k = cid * 10**9
        with chroma2.Session(self.url, timeout=60) as s:
            while time.monotonic() < self.end:
                if rng.random() < 0.05:
                    self.kill_a_client(rng)
                # a round: 1 to 11 events, sent one by one or (half the
                # rounds) in one submit_many, which wants shared options
                group = rng.random() < 0.5
                prio, late = int(rng.integers(-10, 11)), rng.random() < 0.05
                evs = []
                for _ in range(int(rng.integers(1, 12))):
                    ev, n = self.event(rng, k)
                    k += 1
                    ev.priority = prio if group else ev.priority
                    if (late if group else rng.random() < 0.05):
                        ev.deadline = 0.001
                    evs.append((ev, n))
                if group:
                    futs = [(f, ev, n) for f, (ev, n) in zip(s.submit_many([ev for ev, _ in evs]), evs)]
                    self.count("groups")
                else:
                    futs = [(s.submit(ev), ev, n) for ev, n in evs]
                if rng.random() < 0.1 and futs:
                    futs[-1][0].cancel()  # in a group: the group's unfinished events too
                for f, ev, n in futs:
                    try:
                        r = f.result(120)
                    except (concurrent.futures.CancelledError, chroma2.errors.CancelledError):
                        self.count("cancelled")
                        continue
                    except chroma2.errors.DeadlineError:
                        self.count("deadline")
                        continue
                    except chroma2.errors.BusyError:
                        self.count("busy")
                        continue
                    except Exception as e:  # anything else is a failure
                        self.fail(f"event {ev.event_id}: {type(e).__name__}: {e}")
                        continue
                    bad = self.check(ev, n, r)
                    if bad:
                        self.fail(bad)
                    self.count("results")
                    if ev.event_id % 10 == 0:
                        ref = self.engine.run([ev])[0]
                        if not (np.array_equal(ref.hits, r.hits) and ref.counters == r.counters):
                            self.fail(f"event {ev.event_id}: differs from the engine")
                        self.count("compared")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    a = ap.parse_args()
    engine = chroma2.LocalEngine(npmts=PMTS, threads=1)
    with chroma2.Daemon(backend="auto", detector_pmts=PMTS, max_queued=256) as d:
        soak = Soak(d.url, a.seconds, engine)
        threads = [threading.Thread(target=soak.client, args=(i,), daemon=True) for i in range(a.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        samples = []
        print("| t (s) | results | compared | rss (MiB) | fds |\n|---|---|---|---|---|", flush=True)
        while any(t.is_alive() for t in threads):
            time.sleep(min(a.sample, max(0.1, soak.end - time.monotonic() + 1)))
            samples.append((time.monotonic() - t0, daemon_rss(d.proc.pid), daemon_fds(d.proc.pid)))
            print(f"| {samples[-1][0]:.0f} | {soak.counts['results']} | {soak.counts['compared']} | "
                  f"{samples[-1][1] / 2**20:.1f} | {samples[-1][2]} |", flush=True)
        for t in threads:
            t.join()
        with chroma2.Session(d.url) as s:
            stats, status = s.stats(), s.status()
        code = d.stop()
    print(f"counts: {soak.counts}; daemon: {stats['events']}; exit {code}")
    # flat: the last third of the run against the middle third (resident
    # memory swings with the events in flight, so compare peaks and means)
    end = samples[-1][0]
    middle = [x for x in samples if end / 3 <= x[0] < 2 * end / 3] or samples
    last = [x for x in samples if x[0] >= 2 * end / 3] or samples
    problems = list(soak.errors[:10])
    for what, k, slack in (("resident memory (MiB)", 1, 16 * 2**20), ("open descriptors", 2, 4)):
        mid_peak, last_peak = max(x[k] for x in middle), max(x[k] for x in last)
        mid_mean = sum(x[k] for x in middle) / len(middle)
        last_mean = sum(x[k] for x in last) / len(last)
        grow = 1.1 if k == 1 else 1.0
        if last_peak > grow * mid_peak + slack or last_mean > grow * mid_mean + slack:
            scale = 2**20 if k == 1 else 1
            problems.append(f"{what} grew: middle third peak {mid_peak / scale:.1f} mean {mid_mean / scale:.1f}, "
                            f"last third peak {last_peak / scale:.1f} mean {last_mean / scale:.1f}")
    if soak.counts["results"] == 0 or not status["ready"] or code != 0:
        problems.append(f"no results, daemon not ready, or exit {code}")
    for p in problems:
        print("  FAIL", p)
    print(f"tests: {0 if problems else 1} passed, {1 if problems else 0} failed, 0 skipped")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
