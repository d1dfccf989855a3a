"""Session: one connection to chroma2d (a libchroma2-client c2_client) on
which any number of requests and events are in flight at once.

Threads: a submitted event's future completes on one of NNG's threads,
through the c2py_done callback, which copies the result into numpy arrays
and sets the concurrent.futures.Future. The C future is freed (ffi.gc)
when its EventFuture is garbage; the callback itself never drops the last
reference (C forbids freeing a future inside its callback), it parks the
finished EventFuture on the session's reap list, which Python threads
empty on their next call.
"""
import asyncio
import atexit
import collections
import concurrent.futures
import itertools
import os
import threading
import weakref

import msgpack

from ._lib import ffi, lib
from .errors import make_error
from .event import EventDescriptor, Result

DEFAULT_URL = ffi.string(lib.c2py_default_url).decode()
_open_sessions = weakref.WeakSet()
_cancels = None  # a one-thread pool for cancel requests (they wait for a reply)
_cancels_lock = threading.Lock()


def _raise(rc, err):
    if rc:
        raise make_error(rc, ffi.string(err.msg).decode(errors="replace"))


class EventFuture(concurrent.futures.Future):
    """The future of one submitted event: result() is a Result, or raises
    the event's error (a chroma2.errors.RemoteError such as DeadlineError,
    BusyError; ConnectionLost; Timeout). cancel() also cancels the event at
    the daemon, and works while it is queued or running."""

    def __init__(self, session, desc):
        super().__init__()
        self.descriptor = desc
        self._session = session
        self._c = None  # the c2_future, freed by ffi.gc (Session._free_future)
        # for the completion callback; it refers back to self, so it is
        # dropped once the callback ran: a cycle would leave the c2_future
        # to the cyclic collector, which runs on any thread, NNG's included
        self._handle = ffi.new_handle(self)

    @property
    def ticket(self):
        """The daemon's ticket of the event, once done (0 before)."""
        return lib.c2_future_ticket(self._c) if self._c is not None else 0

    def cancel(self):
        if not super().cancel():
            return False
        global _cancels
        with _cancels_lock:
            if _cancels is None:
                _cancels = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chroma2-cancel")
        _cancels.submit(self._cancel_remote)
        return True

    def _cancel_remote(self):
        err = ffi.new("c2_error *")
        lib.c2_future_cancel(self._c, err)  # a closed session or a finished event: nothing to do

    def _complete(self):
        """On an NNG thread (or the submitter's, if it finished at once)."""
        res = ffi.new("c2_event_result **")
        err = ffi.new("c2_error *")
        rc = lib.c2_future_result(self._c, res, err)
        try:
            if rc:
                self.set_exception(make_error(rc, ffi.string(err.msg).decode(errors="replace")))
            else:
                q, r = ffi.new("double *"), ffi.new("double *")
                lib.c2_future_timing(self._c, q, r)
                self.set_result(Result(res[0], self.descriptor.event_id, lib.c2_future_ticket(self._c),
                                       {"queued_ms": q[0], "run_ms": r[0]}, self.descriptor.want))
        except concurrent.futures.InvalidStateError:
            pass  # cancelled here first; the daemon's answer is moot
        self._handle = None  # no callback comes again (this one has resolved it)
        self._session._finished(self)


@ffi.def_extern()
def c2py_done(f, arg):
    ffi.from_handle(arg)._complete()


class Session:
    """A connection to chroma2d.

    url: as for the C client (None: $CHROMA2_URL, else the service's socket
    ipc:///run/chroma2/chroma2d.sock). timeout: seconds for each request
    other than events (an event's own limit is its deadline). The connection
    is made in the background and re-made after a daemon restart; events
    not yet sent wait for it, events already sent when the connection broke
    fail with ConnectionLost (submit them again: same seed, same result). Use as a context manager or
    call close().
    """

    def __init__(self, url=None, timeout=30.0, daemon=None):
        self.url = url or os.environ.get("CHROMA2_URL") or DEFAULT_URL
        self.timeout = timeout
        self._daemon = daemon  # a private chroma2d this session stops on close
        err = ffi.new("c2_error *")
        out = ffi.new("c2_client **")
        _raise(lib.c2_client_open(self.url.encode(), out, err), err)
        self._c = out[0]
        self._lock = threading.Lock()
        self._inflight = set()  # EventFutures not yet done: they hold the callbacks' handles
        self._reap = collections.deque()  # finished futures, dropped on a Python thread
        # C futures are freed under it, and c2_client_close runs under it:
        # the C client frees no future while it closes (reentrant: the
        # reaping drops last references). A free that finds it taken
        # elsewhere waits in _unfreed and the holder frees it after letting
        # go: it may be on an NNG thread that the close waits for.
        self._reap_lock = threading.RLock()
        self._unfreed = collections.deque()
        _open_sessions.add(self)

    @classmethod
    def private(cls, timeout=30.0, **daemon_options):
        """Starts a private chroma2d (chroma2.Daemon(**daemon_options)) and
        connects to it; close() stops it. For notebooks and scripts."""
        from .daemon import Daemon
        d = Daemon(**daemon_options)
        try:
            return cls(d.url, timeout=timeout, daemon=d)
        except BaseException:
            d.stop()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<chroma2.Session {self.url}{' closed' if self._c is None else ''}>"

    def close(self):
        """Closes the connection: events still in flight fail with
        ConnectionLost. Stops the private daemon, if any. Idempotent."""
        with self._reap_lock:
            c, self._c = self._c, None
            if c is not None:
                lib.c2_client_close(c)  # in-flight callbacks run during this
            self._reap.clear()
        self._free_unfreed()
        if self._daemon is not None:
            self._daemon.stop()
            self._daemon = None

    def _client(self):
        with self._reap_lock:
            if self._c is None:
                raise ValueError("the session is closed")
            self._reap.clear()  # drop finished futures here, on a Python thread
            c = self._c
        self._free_unfreed()
        return c

    def _free_future(self, c):
        """ffi.gc's destructor of a C future, on the thread that dropped it."""
        self._unfreed.append(c)
        self._free_unfreed()

    def _free_unfreed(self):
        # Whoever holds _reap_lock frees what waits here after letting go:
        # a free that failed to take it had appended first.
        while self._unfreed and self._reap_lock.acquire(blocking=False):
            try:
                while self._unfreed:
                    lib.c2_future_free(self._unfreed.popleft())
            finally:
                self._reap_lock.release()

    def _finished(self, fut):
        with self._lock:
            self._inflight.discard(fut)
        self._reap.append(fut)

    # ---- requests ----

    def call(self, type, timeout=None, **fields):
        """One request of the protocol (proto/PROTOCOL.md) with its fields;
        returns the reply as a dict."""
        body = b"".join(msgpack.packb(k) + msgpack.packb(v, use_bin_type=True) for k, v in fields.items())
        timeout = self.timeout if timeout is None else timeout
        reply = ffi.new("c2_reply **")
        err = ffi.new("c2_error *")
        rc = lib.c2_client_call(self._client(), type.encode(), body, len(body), len(fields),
                                max(1, int(timeout * 1000)) if timeout else 0, reply, err)
        _raise(rc, err)
        try:
            n = ffi.new("size_t *")
            data = lib.c2_reply_data(reply[0], n)
            return msgpack.unpackb(ffi.buffer(data, n[0]), raw=False)
        finally:
            lib.c2_reply_free(reply[0])

    def hello(self):
        """Server version, backend, devices, limits and loaded geometries."""
        return self.call("hello", versions=[1], client="chroma2-python")

    def ping(self):
        """Round-trip time in seconds."""
        import time
        t = time.perf_counter()
        self.call("ping")
        return time.perf_counter() - t

    def status(self):
        return self.call("status")

    def stats(self):
        return self.call("stats")

    def events(self):
        """The daemon's events in flight (all clients')."""
        return self.call("events")["events"]

    def cancel(self, ticket):
        """Cancels an event by its ticket; True when it was cancelled."""
        return self.call("cancel", ticket=int(ticket))["cancelled"]

    def drain(self):
        self.call("drain")

    def shutdown(self, timeout=None):
        """Asks the daemon to drain and exit (unfinished events fail after timeout seconds)."""
        fields = {} if timeout is None else {"timeout_ms": int(timeout * 1000)}
        self.call("shutdown", **fields)

    # ---- geometries ----

    def load_geometry(self, name, geometry, replace=False, timeout=600.0):
        """Sends a chroma2.Geometry (or Detector); the daemon builds it and
        its BVH. Returns the summary: name, digest, triangles, channels,
        build_s. Submit events to it with EventDescriptor(geometry=name)."""
        msg = geometry.to_message()
        return self.call("load_geometry", timeout=timeout, name=name, replace=bool(replace), geometry=msg)

    def geometries(self):
        """Summaries of the loaded geometries, the built-in "default" among them."""
        return self.call("list_geometries")["geometries"]

    def unload_geometry(self, name):
        self.call("unload_geometry", name=name)

    # ---- events ----

    def submit(self, desc):
        """Sends one event; returns its EventFuture at once. The arrays are
        packed into the request before this returns."""
        if not isinstance(desc, EventDescriptor):
            raise TypeError(f"submit takes an EventDescriptor, got {type(desc).__name__}")
        keep = []
        ev, opts = desc.c_event(keep)
        fut = EventFuture(self, desc)
        out = ffi.new("c2_future **")
        err = ffi.new("c2_error *")
        _raise(lib.c2_client_submit(self._client(), ev, opts, out, err), err)
        fut._c = ffi.gc(out[0], self._free_future)
        with self._lock:
            self._inflight.add(fut)
        lib.c2_future_on_done(fut._c, lib.c2py_done, fut._handle)
        return fut

    def submit_many(self, descs):
        """Sends several events (1 to 1024) in one request: for many small
        events, whose cost is the message more than the photons. They must
        share geometry, digest, deadline and priority. Returns their
        EventFutures in order; each ends with its own Result or error, all
        at once when the last has finished. Cancelling one cancels those
        of its request not yet finished."""
        descs = list(descs)
        if not descs or len(descs) > 1024:
            raise ValueError(f"submit_many takes 1 to 1024 events, got {len(descs)}")
        if not all(isinstance(d, EventDescriptor) for d in descs):
            raise TypeError("submit_many takes EventDescriptors")
        keep = []
        evs = ffi.new("c2_event[]", len(descs))
        opts = None
        for i, d in enumerate(descs):
            ev, o = d.c_event(keep)
            evs[i] = ev[0]
            shared = (ffi.string(o.geometry), ffi.string(o.digest) if o.digest else None, o.deadline_ms, o.priority)
            if opts is None:
                opts, first = o, shared
            elif shared != first:
                raise ValueError(f"submit_many: event {i} has another geometry, digest, deadline or priority "
                                 "than event 0; submit it in another call")
        futs = [EventFuture(self, d) for d in descs]
        out = ffi.new("c2_future *[]", len(descs))
        err = ffi.new("c2_error *")
        _raise(lib.c2_client_submit_many(self._client(), evs, len(descs), opts, out, err), err)
        for fut, c in zip(futs, out):
            fut._c = ffi.gc(c, self._free_future)
        with self._lock:
            self._inflight.update(futs)
        for fut in futs:
            lib.c2_future_on_done(fut._c, lib.c2py_done, fut._handle)
        return futs

    async def submit_async(self, desc):
        """await session.submit_async(desc) -> Result. Cancelling the
        awaiting task cancels the event at the daemon."""
        return await asyncio.wrap_future(self.submit(desc))

    def simulate(self, events, progress=True, max_in_flight=64, per_request=16):
        """Runs many events and yields each Result as it finishes (not in
        submission order), keeping at most max_in_flight at the daemon and
        sending up to per_request of them in one message (submit_many) when
        they share their options. A failed event raises its error here.
        progress: a tqdm bar."""
        from tqdm.auto import tqdm
        events = list(events)
        pending = set()
        it = iter(events)
        with tqdm(total=len(events), unit="event", disable=not progress) as bar:
            photons = 0
            while True:
                while len(pending) < max_in_flight:
                    group = list(itertools.islice(it, min(per_request, max_in_flight - len(pending))))
                    if not group:
                        break
                    same = {(d.geometry, d.digest, d.deadline, d.priority) for d in group}
                    pending.update(self.submit_many(group) if len(same) == 1 else map(self.submit, group))
                if not pending:
                    return
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for f in done:
                    res = f.result()
                    photons += res.counters["photons"]
                    bar.set_postfix(photons=photons, refresh=False)
                    bar.update(1)
                    yield res


@atexit.register
def _close_all():
    """NNG threads must not call into a finalising interpreter."""
    for s in list(_open_sessions):
        s.close()
