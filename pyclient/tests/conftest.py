"""Fixtures: one private chroma2d for the test session (a real process on a
temporary ipc socket, a small built-in detector so that it starts fast) and
the in-process engine on the same detector, the reference for results."""
import os

import pytest

import chroma2

PMTS = 300  # the built-in detector's PMTs, in the daemon and the reference alike


@pytest.fixture(scope="session")
def daemon():
    d = chroma2.Daemon(backend=os.environ.get("CHROMA2_TEST_BACKEND", "auto"), detector_pmts=PMTS, threads=2)
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


def pytest_terminal_summary(terminalreporter):
    """The summary line tests/run folds with the C suites'."""
    st = terminalreporter.stats
    n = {k: len([r for r in st.get(k, []) if getattr(r, "when", "call") in ("call", "setup")])
         for k in ("passed", "failed", "error", "skipped")}
    terminalreporter.write_line(f"tests: {n['passed']} passed, {n['failed'] + n['error']} failed, "
                                f"{n['skipped']} skipped")
