"""The Python client against a real chroma2d: requests, results equal to the
in-process engine and to the C client, many threads and asyncio tasks at
once, cancellation, timeouts and deadlines, arguments refused before
anything is sent, and a daemon restart."""
import asyncio
import concurrent.futures
import os
import re
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import BACKEND, LONG, PMTS, point

import chroma2
from chroma2 import flags

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


# The cpu backend gives the engine's bytes; the cuda one the same up to
# float rounding (the GPU fuses multiply-adds), which can send a rare photon
# another way: as the C daemon suite, at least 99.9% alike there.
EXACT = BACKEND != "cuda"


def near(x, y):
    """Times alike up to float rounding."""
    return np.abs(x - y) <= 1e-3 + 1e-4 * np.abs(y)


def same(a, b):
    """Result a (the daemon's) holds b's (the engine's) hits, end states,
    channel summaries and counters: the same bytes, or from cuda at least
    99.9% of hits on the same photons and channels at times alike, of end
    states with the same flags, channel and time, steps within 0.1%, and
    channel summaries that sum a's own hits and count b's within 0.1%."""
    for key in ("hits", "channels", "photons"):
        assert (getattr(a, key) is None) == (getattr(b, key) is None), key
    if EXACT:
        for key in ("hits", "channels"):
            assert getattr(a, key) is None or np.array_equal(getattr(a, key), getattr(b, key)), key
        if a.photons is not None:
            for col in ("pos", "dir", "pol", "wavelengths", "t", "flags", "channels", "last_hit_triangles", "steps"):
                assert np.array_equal(getattr(a.photons, col), getattr(b.photons, col)), col
        assert a.counters == b.counters
        return
    if a.hits is not None:
        x, y = a.hits, b.hits
        _, i, j = np.intersect1d(x["photon_id"], y["photon_id"], assume_unique=True, return_indices=True)
        alike = np.count_nonzero((x["channel"][i] == y["channel"][j]) & near(x["time"][i], y["time"][j]))
        assert alike >= 0.999 * len(y) and len(x) <= len(y) + 1 + len(y) // 1000, (alike, len(x), len(y))
    if a.channels is not None:
        na, nb = a.channels["count"].sum(), b.channels["count"].sum()
        assert abs(int(na) - int(nb)) <= 1 + nb // 1000, (na, nb)
        if a.hits is not None:
            ch, count = np.unique(a.hits["channel"], return_counts=True)
            assert np.array_equal(a.channels["channel"], ch) and np.array_equal(a.channels["count"], count)
    if a.photons is not None:
        p, q = a.photons, b.photons
        alike = (p.flags == q.flags) & (p.channels == q.channels) & near(p.t, q.t)
        assert np.count_nonzero(alike) >= 0.999 * len(q), (np.count_nonzero(alike), len(q))
    c, d = a.counters, b.counters
    assert c["photons"] == d["photons"] and abs(c["steps"] - d["steps"]) <= 0.001 * d["steps"] + 2, (c, d)


def test_hello_status_ping_stats(session):
    h = session.hello()
    assert h["version"] == 1 and h["server"].startswith("chroma2d ")
    assert h["limits"]["max_events_per_request"] == 1024
    assert h["backend"] in ("cpu", "cuda")
    assert [g["name"] for g in h["geometries"] if g["builtin"]] == ["default"]
    assert re.fullmatch(r"[0-9a-f]{64}", h["geometries"][0]["digest"])
    st = session.status()
    assert st["ready"] and st["state"] == "serving" and st["reason"] == ""
    assert 0 < session.ping() < 1.0
    assert {"accepted", "completed", "failed", "cancelled"} <= set(session.stats()["events"])
    assert session.geometries()[0]["channels"] == PMTS


def test_results_equal_engine(session, engine):
    rng = np.random.default_rng(5)
    photons = chroma2.Photons.isotropic(3000, (100.0, -50.0, 20.0), 440.0, seed=9)
    photons.t = rng.uniform(0, 5, len(photons)).astype(np.float32)
    events = [point(20000, seed=7, event_id=1, want=("hits", "photons", "channels")),
              chroma2.EventDescriptor(photons=photons, seed=8, event_id=2, want=("hits", "photons", "channels")),
              chroma2.EventDescriptor(photons=photons, sources=[chroma2.Source((0, 0, 500.0), 5000, wavelength=380.0,
                                                                               direction=(0, 0, 1),
                                                                               cos_half_angle=0.5)],
                                      seed=8, event_id=3, want=("hits", "channels"))]
    remote = [session.submit(e).result(60) for e in events]
    local = engine.run(events)
    for r, l in zip(remote, local):
        same(r, l)
        assert r.ticket > 0 and r.timing["run_ms"] > 0
    assert remote[0].nhits > 50, "too few hits to compare anything"
    # the end states are physical: every photon finished, hits are detections
    fl = remote[0].photons.flags
    assert (fl & np.uint32(flags.FINISHED) != 0).all()
    assert flags.counts(fl)["SURFACE_DETECT"] == remote[0].nhits
    assert (remote[0].hits["channel"] >= 0).all() and (remote[0].hits["channel"] < PMTS).all()


def test_results_equal_c_client(daemon, session):
    """The C example's events (client/examples/overlapping_events.c: seed 42,
    event i a point source at x = 1000 i mm of 50,000 (i + 1) photons) give
    the same hit counts from Python."""
    out = subprocess.run([os.path.join(ROOT, "build", "bin", "overlapping_events"), daemon.url], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    c_hits = {int(m[0]): int(m[1]) for m in re.findall(r"event (\d+) \(ticket \d+\): \d+ photons, (\d+) hits", out)}
    assert len(c_hits) == 5, out
    futs = [session.submit(point(50000 * (i + 1), seed=42, event_id=i, pos=(1000.0 * i, 0, 0))) for i in range(5)]
    assert {i: f.result(60).nhits for i, f in enumerate(futs)} == c_hits


def test_many_threads_and_tasks(session, engine):
    events = [point(2000 + 100 * i, seed=3, event_id=i, want=("hits", "channels")) for i in range(48)]
    expect = engine.run(events)
    got = {}

    def worker(k):
        for e in events[k::8]:
            got[e.event_id] = session.submit(e).result(60)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(48))
    for e, x in zip(events, expect):
        same(got[e.event_id], x)

    async def many():
        return await asyncio.gather(*(session.submit_async(e) for e in events))
    for r, x in zip(asyncio.run(many()), expect):
        same(r, x)


def test_sessions_opened_and_closed_from_threads(daemon):
    """Eight threads each open a session, submit one event and close it, 100
    times: 800 connections made and torn down at once in one process (NNG
    1.5.2's socket close deadlocked so in an early soak; the NNG we build
    must not)."""
    served = []

    def worker(k):
        for i in range(100):
            with chroma2.Session(daemon.url, timeout=30) as s:
                served.append(s.submit(point(200, event_id=k * 100 + i)).result(30).counters["photons"])
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a session's close hung"
    assert served == [200] * 800


def test_finished_futures_freed_without_the_cycle_collector(daemon):
    """A finished future, dropped by its user, is freed (its C future with
    it) when the session next reaps, by reference counting alone: left to
    the cyclic collector, it would be freed on whatever thread that runs,
    NNG's callback threads included."""
    import gc
    import weakref
    gc.disable()
    try:
        with chroma2.Session(daemon.url, timeout=30) as s:
            futs = [s.submit(point(100, event_id=i)) for i in range(4)]
            futs += s.submit_many([point(100, event_id=10 + i) for i in range(4)])
            for f in futs:
                assert f.result(30).counters["photons"] == 100
            refs = [weakref.ref(f) for f in futs]
            del f, futs
            s.ping()  # any request reaps the finished futures first
            alive = sum(r() is not None for r in refs)
            assert alive == 0, f"{alive} of {len(refs)} finished futures still alive without the collector"
    finally:
        gc.enable()


def test_simulate_yields_every_result(session, engine):
    events = [point(1000, seed=11, event_id=i) for i in range(30)]
    got = {r.event_id: r for r in session.simulate(events, progress=False, max_in_flight=4)}
    assert sorted(got) == list(range(30))
    for e, x in zip(events, engine.run(events)):
        same(got[e.event_id], x)


def test_submit_many(session, engine):
    """Events sent several to a message end as each would alone; options
    that differ are refused before anything is sent."""
    photons = chroma2.Photons.isotropic(500, (0.0, 0.0, 0.0), 430.0, seed=3)
    events = [point(800 + 50 * i, seed=12, event_id=i, want=("hits", "channels")) for i in range(20)]
    events[7] = chroma2.EventDescriptor(photons=photons, seed=12, event_id=7, want=("hits", "photons"))
    futs = session.submit_many(events)
    assert len(futs) == 20
    for f, x in zip(futs, engine.run(events)):
        same(f.result(60), x)
        assert f.ticket > 0
    # simulate sends them in groups, and still yields every result
    got = {r.event_id for r in session.simulate(events, progress=False, max_in_flight=8, per_request=4)}
    assert got == set(range(20))
    with pytest.raises(ValueError, match="event 1 has another"):
        session.submit_many([point(10, seed=1), point(10, seed=1, priority=3)])
    with pytest.raises(ValueError, match="1 to 1024"):
        session.submit_many([])


def _wait_for(cond, timeout=30):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def test_cancel_reaches_daemon(session):
    before = session.stats()["events"]["cancelled"]
    f = session.submit(point(LONG, seed=1))
    _wait_for(lambda: any(e["ticket"] for e in session.events()))
    assert f.cancel() and f.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        f.result(1)
    _wait_for(lambda: session.stats()["events"]["cancelled"] == before + 1)

    async def cancel_task():
        t = asyncio.ensure_future(session.submit_async(point(LONG, seed=2)))
        await asyncio.sleep(0.2)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
    asyncio.run(cancel_task())
    _wait_for(lambda: session.stats()["events"]["cancelled"] == before + 2)
    _wait_for(lambda: not session.events())
    assert session.submit(point(100)).result(60).counters["photons"] == 100  # still serving


def test_timeouts_and_deadlines(session):
    f = session.submit(point(LONG, seed=4))
    with pytest.raises(concurrent.futures.TimeoutError):
        f.result(timeout=0.01)
    f.cancel()
    with pytest.raises(chroma2.errors.DeadlineError, match="deadline"):
        session.submit(point(LONG, seed=5, deadline=0.05)).result(60)
    with pytest.raises(chroma2.errors.NotFoundError, match="nope"):
        session.submit(point(10, geometry="nope")).result(60)
    with pytest.raises(chroma2.errors.DigestMismatchError):
        session.submit(point(10, digest="0" * 64)).result(60)
    # nobody listening: a call ends with a clear timeout, never hangs
    with chroma2.Session("ipc:///nonexistent/chroma2.sock", timeout=0.3) as s:
        t = time.monotonic()
        with pytest.raises(chroma2.Timeout, match="no reply within 300 ms"):
            s.status()
        assert time.monotonic() - t < 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "no photons"),
    (dict(sources=[chroma2.Source((0, 0, 0), 0)]), r"sources\[0\].nphotons"),
    (dict(sources=[chroma2.Source((0, 0, np.nan), 10)]), "finite"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10, cos_half_angle=2)]), "cos_half_angle"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10, cos_half_angle=0.5, direction=(1, 1, 0))]), "unit vector"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10, spectrum=0)]), "0 spectra"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], seed=-1), "seed"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], seed=2**64), "seed"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], priority=11), "priority"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], want=("hits", "everything")), "everything"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], deadline=-1), "deadline"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], max_steps=0), "max_steps"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], geometry="bad name!"), "geometry"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10)], digest="XYZ"), "digest"),
    (dict(sources=[chroma2.Source((0, 0, 0), 10, spectrum=0)], spectra=[[0, 0.5, 0.9]]), "CDF"),
])
def test_bad_events_refused_before_sending(session, kwargs, message):
    before = session.stats()["events"]["accepted"]
    with pytest.raises(ValueError, match=message):
        session.submit(chroma2.EventDescriptor(**kwargs))
    assert session.stats()["events"]["accepted"] == before


@pytest.mark.parametrize("make, message", [
    (lambda: chroma2.Photons(np.zeros((3, 2)), np.zeros((3, 3)), wavelengths=400), r"shape \(3, 2\)"),
    (lambda: chroma2.Photons(np.zeros((3, 3)), np.zeros((2, 3)), wavelengths=400), "2 rows for 3"),
    (lambda: chroma2.Photons(np.full((3, 3), np.inf), np.zeros((3, 3)), wavelengths=400), r"pos\[0\].*finite"),
    (lambda: chroma2.Photons(np.zeros((2, 3)), [[0, 0, 1], [0, 0, 2]], wavelengths=400), r"dir\[1\].*unit"),
    (lambda: chroma2.Photons(np.zeros((1, 3)), [[0, 0, 1]], pol=[[0, 0, 1]], wavelengths=400), "perpendicular"),
    (lambda: chroma2.Photons(np.zeros((1, 3)), [[0, 0, 1]], wavelengths=-5), "wavelengths"),
])
def test_bad_photons_refused(make, message):
    with pytest.raises(ValueError, match=message):
        chroma2.EventDescriptor(photons=make())


def test_daemon_rejection_is_precise(session):
    """What only the daemon can know (the grid) comes back as a named error."""
    p = chroma2.Photons.beam(5, (0, 0, 0), (0, 0, 1), wavelength=5000.0)
    with pytest.raises(chroma2.errors.BadRequestError, match="wavelength"):
        session.submit(chroma2.EventDescriptor(photons=p)).result(60)


def test_photons_are_chroma_like():
    p = chroma2.Photons.isotropic(10, (0, 0, 0), 400.0, seed=1)
    q = p[2:5] + p[:1]
    assert len(q) == 4 and np.array_equal(q.pos[3], p.pos[0])
    assert q.pos.dtype == np.float32 and q.pos.flags["C_CONTIGUOUS"]
    # the flag names and bits are Chroma's (PROTOCOL.md, "History flags")
    chroma = {"NO_HIT": 0x1, "BULK_ABSORB": 0x2, "SURFACE_DETECT": 0x4, "SURFACE_ABSORB": 0x8,
              "RAYLEIGH_SCATTER": 0x10, "REFLECT_DIFFUSE": 0x20, "REFLECT_SPECULAR": 0x40, "SURFACE_REEMIT": 0x80,
              "SURFACE_TRANSMIT": 0x100, "BULK_REEMIT": 0x200, "CHERENKOV": 0x400, "SCINTILLATION": 0x800,
              "MAX_STEPS": 0x40000000, "NAN_ABORT": 0x80000000}
    assert {n: int(getattr(flags, n)) for n in chroma} == chroma
    assert flags.names(0x14) == ["SURFACE_DETECT", "RAYLEIGH_SCATTER"]


def test_daemon_restart(tmp_path):
    """Events sent while the daemon is down run once it is back; a session
    whose daemon is gone reports a clear error instead of hanging."""
    url = f"ipc://{tmp_path}/restart.sock"
    d = chroma2.Daemon(url=url, backend="cpu", detector_pmts=PMTS, threads=1)
    with chroma2.Session(url, timeout=2) as s:
        first = s.submit(point(1000, seed=1)).result(60)
        assert d.stop() == 0
        with pytest.raises((chroma2.Timeout, chroma2.ConnectionLost)):
            s.status()
        pending = s.submit(point(1000, seed=1))
        d = chroma2.Daemon(url=url, backend="cpu", detector_pmts=PMTS, threads=1)
        try:
            again = pending.result(60)
            assert np.array_equal(again.hits, first.hits)
            assert s.status()["ready"]
        finally:
            d.stop()
        with pytest.raises(chroma2.Timeout):  # gone for good: the deadline's grace ends the wait
            s.submit(point(1000, deadline=0.01)).result(60)


def test_daemon_killed_with_events_in_flight(tmp_path):
    """SIGKILL with events queued and running: each future ends with a clear
    error (never hangs), a new daemon starts on the same socket (the lock
    dies with the process) and the same session is served again."""
    import signal
    url = f"ipc://{tmp_path}/killed.sock"
    d = chroma2.Daemon(url=url, backend="cpu", detector_pmts=PMTS, threads=1)
    with chroma2.Session(url, timeout=2) as s:
        futs = [s.submit(point(20_000_000, seed=i, deadline=60)) for i in range(3)]
        _wait_for(lambda: any(e["state"] == "running" for e in s.events()))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        for f in futs:
            with pytest.raises((chroma2.ConnectionLost, chroma2.Timeout)):
                f.result(90)
        d.stop()
        d = chroma2.Daemon(url=url, backend="cpu", detector_pmts=PMTS, threads=1)
        try:
            assert s.submit(point(1000, seed=1)).result(60).counters["photons"] == 1000
        finally:
            assert d.stop() == 0
