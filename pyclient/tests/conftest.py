"""Fixtures: one private chroma2d for the test session (a real process on a
temporary ipc socket, a small built-in detector so that it starts fast) and
the in-process engine on the same detector, the reference for results."""
import os

import pytest

import chroma2

PMTS = 300  # the built-in detector's PMTs, in the daemon and the reference alike
BACKEND = os.environ.get("CHROMA2_TEST_BACKEND", "cpu")  # make test-gpu: cuda
# photons of an event that runs for seconds, long enough to cancel or time
# out (the GPU does 20 M in ~0.1 s)
LONG = 1_000_000_000 if BACKEND == "cuda" else 20_000_000


@pytest.fixture(scope="session")
def daemon():
    # cpu by default: results are compared bit for bit with the in-process
    # CPU engine (from cuda up to float rounding: test_session.same)
    d = chroma2.Daemon(backend=BACKEND, detector_pmts=PMTS, threads=2)
    yield d
    assert d.stop() == 0, d.log_tail()


@pytest.fixture
def session(daemon):
    with chroma2.Session(daemon.url, timeout=30) as s:
        yield s


@pytest.fixture(scope="session")
def engine():
    return chroma2.LocalEngine(npmts=PMTS, threads=2)


def point(n, seed=1, event_id=0, pos=(0.0, 0.0, 0.0), **kw):
    """An event of one isotropic point source at 420 nm."""
    return chroma2.EventDescriptor(sources=[chroma2.Source(pos, n)], seed=seed, event_id=event_id, **kw)
