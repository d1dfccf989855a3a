"""Several events with overlapping lifetimes, submitted from threads and
from asyncio on one Session; prints a summary line per event as each
finishes.

    python overlapping_events.py [--url URL]     # default: $CHROMA2_URL or the service
"""
import argparse
import asyncio
import threading

import numpy as np

import chroma2


def summary(tag, res):
    h = res.hits
    top = np.bincount(h["channel"]).argmax() if len(h) else -1
    t = f"{np.median(h['time']):6.2f}" if len(h) else "     -"
    print(f"{tag:>8} event {res.event_id:3d}: {res.counters['photons']:8d} photons {len(h):6d} hits "
          f"median t {t} ns  busiest PMT {top:5d}  queued {res.timing['queued_ms']:7.1f} ms "
          f"ran {res.timing['run_ms']:7.1f} ms", flush=True)


def event(i, n):
    """A point source, a different place and size for each event."""
    angle = 2 * np.pi * i / 8
    pos = (3000 * np.cos(angle), 3000 * np.sin(angle), 500.0 * (i % 3 - 1))
    return chroma2.EventDescriptor(sources=[chroma2.Source(pos, n)], seed=2026, event_id=i, want=("hits",))


def from_threads(session, nthreads=4):
    def worker(k):
        # two events in flight from each thread before waiting for either
        futures = [session.submit(event(k * 2 + j, 100_000 * (j + 1))) for j in range(2)]
        for f in futures:
            summary(f"thread{k}", f.result())
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


async def from_asyncio(session, nevents=8, first_id=100):
    async def one(i):
        summary("asyncio", await session.submit_async(event(i, 50_000 * (1 + i % 4))))
    await asyncio.gather(*(one(first_id + i) for i in range(nevents)))


def main(url=None):
    with chroma2.Session(url) as s:
        h = s.hello()
        print(f"{h['server']} at {s.url}, backend {h['backend']}")
        from_threads(s)
        asyncio.run(from_asyncio(s))
        st = s.stats()
        print(f"daemon: {st['events']['completed']} events completed, {st['photons']} photons")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="chroma2d's URL")
    main(p.parse_args().url)
