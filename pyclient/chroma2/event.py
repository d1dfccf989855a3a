"""Events and results: Photons (Chroma's structure of arrays), point Sources,
the EventDescriptor that is checked here before anything is sent, and the
Result of a finished event.

Units: mm, ns, nm. Arrays are float32 on the wire; inputs of other float
types are converted once, contiguous float32 arrays are used as they are.
"""
import math
import re
from dataclasses import dataclass

import numpy as np

from . import flags as _flags
from ._lib import ffi, lib

UNIT_TOLERANCE = 1e-3  # the engine's tolerance on unit vectors and perpendicularity
WANT = ("hits", "photons", "channels")
_WANT_BITS = {"hits": lib.C2_RETURN_HITS, "photons": lib.C2_RETURN_PHOTONS, "channels": lib.C2_RETURN_CHANNELS}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
U32 = 2**32 - 1
U64 = 2**64 - 1


def _dtype(ctype):
    """The numpy dtype of a C struct, read from cffi's view of the header."""
    t = ffi.typeof(ctype)
    names, formats, offsets = [], [], []
    for name, f in t.fields:
        base = f.type.item if f.type.kind == "array" else f.type
        fmt = {"float": "<f4", "uint32_t": "<u4", "int32_t": "<i4"}[base.cname]
        names.append(name)
        formats.append((fmt, (f.type.length,)) if f.type.kind == "array" else fmt)
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ffi.sizeof(t)})


HIT_DTYPE = _dtype("c2_hit")
PHOTON_DTYPE = _dtype("c2_photon")
SOURCE_DTYPE = _dtype("c2_source")
CHANNEL_DTYPE = _dtype("c2_channel_summary")


def _f32(name, a, ncomp):
    """a as a contiguous float32 array of shape (n,) or (n, ncomp), finite."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    want = "(n,)" if ncomp == 1 else f"(n, {ncomp})"
    if (ncomp == 1 and a.ndim != 1) or (ncomp > 1 and (a.ndim != 2 or a.shape[1] != ncomp)):
        raise ValueError(f"{name}: shape {a.shape}, expected {want}")
    bad = np.flatnonzero(~np.isfinite(a).reshape(len(a), -1).all(axis=1))
    if len(bad):
        raise ValueError(f"{name}[{bad[0]}] is not finite: {a[bad[0]]}")
    return a


def _check_unit(name, v, allow_zero=False):
    norm = np.linalg.norm(v, axis=1)
    bad = np.abs(norm - 1.0) > UNIT_TOLERANCE
    if allow_zero:
        bad &= norm != 0.0
    i = np.flatnonzero(bad)
    if len(i):
        raise ValueError(f"{name}[{i[0]}] = {v[i[0]]} is not a unit vector (norm {norm[i[0]]:.6g})")


class Photons:
    """Photons as Chroma holds them: a structure of arrays.

    Input photons need pos (n,3), dir (n,3) unit, wavelengths (n,); pol (n,3)
    unit and perpendicular to dir, or zero for a random polarisation (None:
    all random); t (n,) ns (None: 0); weights (n,) (None: 1). End states
    returned by the daemon also carry flags, last_hit_triangles, channels
    and steps.
    """

    _END = ("flags", "last_hit_triangles", "channels", "steps")

    def __init__(self, pos, dir, pol=None, wavelengths=None, t=None, last_hit_triangles=None, flags=None,
                 weights=None, channels=None, steps=None):
        if wavelengths is None:
            raise ValueError("Photons: wavelengths are required")
        self.pos = _f32("photons.pos", pos, 3)
        n = len(self.pos)
        self.dir = _f32("photons.dir", dir, 3)
        self.wavelengths = _f32("photons.wavelengths", np.broadcast_to(wavelengths, (n,)), 1)
        self.pol = None if pol is None else _f32("photons.pol", pol, 3)
        self.t = None if t is None else _f32("photons.t", t, 1)
        self.weights = None if weights is None else _f32("photons.weights", weights, 1)
        for name, a in (("dir", self.dir), ("pol", self.pol), ("t", self.t), ("weights", self.weights)):
            if a is not None and len(a) != n:
                raise ValueError(f"photons.{name}: {len(a)} rows for {n} photons")
        self.flags = None if flags is None else np.asarray(flags, dtype=np.uint32)
        self.last_hit_triangles = None if last_hit_triangles is None else np.asarray(last_hit_triangles, np.int32)
        self.channels = None if channels is None else np.asarray(channels, dtype=np.int32)
        self.steps = None if steps is None else np.asarray(steps, dtype=np.uint32)

    def __len__(self):
        return len(self.pos)

    def __repr__(self):
        return f"<Photons n={len(self)}>"

    def __getitem__(self, key):
        """A subset (slice, index array or boolean mask), as in Chroma."""
        def pick(a):
            return None if a is None else a[key]
        return Photons(self.pos[key], self.dir[key], pick(self.pol), self.wavelengths[key], pick(self.t),
                       pick(self.last_hit_triangles), pick(self.flags), pick(self.weights), pick(self.channels),
                       pick(self.steps))

    def __add__(self, other):
        """Concatenation, as in Chroma; optional columns default where one side lacks them."""
        n, m = len(self), len(other)

        def cat(a, b, fill, shape=()):
            if a is None and b is None:
                return None
            a = np.full((n,) + shape, fill, np.float32) if a is None else a
            b = np.full((m,) + shape, fill, np.float32) if b is None else b
            return np.concatenate([a, b])
        return Photons(np.concatenate([self.pos, other.pos]), np.concatenate([self.dir, other.dir]),
                       cat(self.pol, other.pol, 0.0, (3,)), np.concatenate([self.wavelengths, other.wavelengths]),
                       cat(self.t, other.t, 0.0), weights=cat(self.weights, other.weights, 1.0))

    @property
    def detected(self):
        """Boolean mask of photons that ended on a photocathode (SURFACE_DETECT)."""
        if self.flags is None:
            raise ValueError("these photons have no flags: they were not propagated")
        return (self.flags & np.uint32(_flags.SURFACE_DETECT)) != 0

    def check(self):
        """Raises ValueError naming the first photon whose direction or
        polarisation is not a unit vector, or whose wavelength is not > 0."""
        _check_unit("photons.dir", self.dir)
        if self.pol is not None:
            _check_unit("photons.pol", self.pol, allow_zero=True)
            dot = np.abs(np.einsum("ij,ij->i", self.pol, self.dir))
            i = np.flatnonzero(dot > UNIT_TOLERANCE)
            if len(i):
                raise ValueError(f"photons.pol[{i[0]}] is not perpendicular to dir (|pol.dir| = {dot[i[0]]:.3g})")
        i = np.flatnonzero(self.wavelengths <= 0)
        if len(i):
            raise ValueError(f"photons.wavelengths[{i[0]}] = {self.wavelengths[i[0]]} is not > 0 nm")

    @classmethod
    def beam(cls, n, pos, dir, wavelength, t=0.0):
        """n identical photons at pos going along dir."""
        d = np.asarray(dir, np.float64)
        d = d / np.linalg.norm(d)
        return cls(np.tile(np.asarray(pos, np.float32), (n, 1)), np.tile(d.astype(np.float32), (n, 1)),
                   wavelengths=np.full(n, wavelength, np.float32), t=np.full(n, t, np.float32))

    @classmethod
    def isotropic(cls, n, pos, wavelength, seed=None):
        """n photons from pos in uniformly random directions (numpy's RNG)."""
        rng = np.random.default_rng(seed)
        cos = rng.uniform(-1, 1, n)
        phi = rng.uniform(0, 2 * np.pi, n)
        sin = np.sqrt(1 - cos * cos)
        d = np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], axis=1)
        return cls(np.tile(np.asarray(pos, np.float32), (n, 1)), d, wavelengths=np.full(n, wavelength, np.float32))


@dataclass
class Source:
    """A point source ("genstep") that expands into nphotons photons where
    they run. Isotropic unless cos_half_angle > -1 (a cone around direction).
    The wavelength is fixed, or drawn from spectra[spectrum] of the event."""
    pos: tuple
    nphotons: int
    wavelength: float = 420.0
    time: float = 0.0
    direction: tuple = (0.0, 0.0, 1.0)
    cos_half_angle: float = -1.0
    spectrum: int = -1


class EventDescriptor:
    """One event to simulate: explicit photons and/or point sources.

    seed and event_id key the random numbers: the same pair gives the same
    result on any backend, batch or thread count. want: any of "hits",
    "photons" (every photon's end state), "channels" (per-PMT summary).
    deadline: seconds from receipt at the daemon (None: none). priority:
    -10..10, higher first. spectra: (k, nwl) CDFs on the geometry's grid,
    for sources with spectrum >= 0.
    """

    def __init__(self, photons=None, sources=(), spectra=None, seed=0, event_id=0, want=("hits",),
                 max_steps=None, deadline=None, priority=0, geometry="default", digest=None):
        self.photons = photons
        self.sources = list(sources)
        self.spectra = spectra
        self.seed = seed
        self.event_id = event_id
        self.want = (want,) if isinstance(want, str) else tuple(want)
        self.max_steps = lib.C2_DEFAULT_MAX_STEPS if max_steps is None else max_steps
        self.deadline = deadline
        self.priority = priority
        self.geometry = geometry
        self.digest = digest
        self._check()

    def __repr__(self):
        return (f"<EventDescriptor event_id={self.event_id} seed={self.seed} photons={self.nphotons} "
                f"geometry={self.geometry!r}>")

    @property
    def nphotons(self):
        """Explicit photons plus every source's photons."""
        return (0 if self.photons is None else len(self.photons)) + sum(s.nphotons for s in self.sources)

    def _check(self):
        def integer(name, v, lo, hi):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
        integer("seed", self.seed, 0, U64)
        integer("event_id", self.event_id, 0, U64)
        integer("max_steps", self.max_steps, 1, U32)
        integer("priority", self.priority, -10, 10)
        bad = [w for w in self.want if w not in WANT]
        if bad or not self.want:
            raise ValueError(f"want: {bad or 'nothing'}; choose from {WANT}")
        if self.deadline is not None and not (isinstance(self.deadline, (int, float)) and
                                              0 < self.deadline <= (U32 - lib.C2_DEADLINE_GRACE_MS) / 1000):
            raise ValueError(f"deadline must be seconds > 0 (or None), got {self.deadline!r}")
        if not isinstance(self.geometry, str) or not _NAME_RE.match(self.geometry):
            raise ValueError(f"geometry: {self.geometry!r} is not a name of 1 to 64 of A-Z a-z 0-9 _ . -")
        if self.digest is not None and not (isinstance(self.digest, str) and _DIGEST_RE.match(self.digest)):
            raise ValueError(f"digest: {self.digest!r} is not 64 lowercase hex digits")
        if self.photons is not None:
            if not isinstance(self.photons, Photons):
                raise ValueError(f"photons must be a chroma2.Photons, got {type(self.photons).__name__}")
            self.photons.check()
        nspectra = 0
        if self.spectra is not None:
            self.spectra = np.ascontiguousarray(np.atleast_2d(self.spectra), dtype=np.float32)
            s = self.spectra
            if s.ndim != 2 or s.shape[1] < 2 or not np.isfinite(s).all():
                raise ValueError(f"spectra: shape {s.shape}, expected finite (k, nwl) CDFs with nwl >= 2")
            for k, cdf in enumerate(s):
                if cdf[0] < 0 or (np.diff(cdf) < 0).any() or abs(cdf[-1] - 1) > 1e-4:
                    raise ValueError(f"spectra[{k}] is not a nondecreasing CDF from >= 0 ending at 1")
            nspectra = len(s)
        for i, s in enumerate(self.sources):
            where = f"sources[{i}]"
            if not isinstance(s, Source):
                raise ValueError(f"{where} must be a chroma2.Source, got {type(s).__name__}")
            integer(f"{where}.nphotons", s.nphotons, 1, U32)
            pos, d = np.asarray(s.pos, np.float64), np.asarray(s.direction, np.float64)
            if pos.shape != (3,) or not np.isfinite(pos).all() or not math.isfinite(s.time):
                raise ValueError(f"{where}: pos {s.pos!r} and time {s.time!r} must be finite (pos: 3 values)")
            if not -1 <= s.cos_half_angle <= 1:
                raise ValueError(f"{where}.cos_half_angle = {s.cos_half_angle} is not in [-1, 1]")
            if s.cos_half_angle > -1 and (d.shape != (3,) or abs(np.linalg.norm(d) - 1) > UNIT_TOLERANCE):
                raise ValueError(f"{where}.direction {s.direction!r} is not a unit vector")
            if s.spectrum == -1:
                if not (math.isfinite(s.wavelength) and s.wavelength > 0):
                    raise ValueError(f"{where}.wavelength = {s.wavelength} is not > 0 nm")
            elif not (isinstance(s.spectrum, (int, np.integer)) and 0 <= s.spectrum < nspectra):
                raise ValueError(f"{where}.spectrum = {s.spectrum!r}: the event has {nspectra} spectra")
        n = self.nphotons
        if n == 0:
            raise ValueError("the event has no photons: give photons or sources")
        if n > U32:
            raise ValueError(f"the event has {n} photons; at most {U32} fit in one event")

    def _want_bits(self):
        bits = 0
        for w in self.want:
            bits |= _WANT_BITS[w]
        return bits

    def _sources_array(self):
        a = np.zeros(len(self.sources), SOURCE_DTYPE)
        for i, s in enumerate(self.sources):
            a[i] = (s.pos, s.time, s.direction, s.cos_half_angle, s.wavelength, s.spectrum, s.nphotons, 0)
        return a

    def c_event(self, keep):
        """The c2_event (and, for the client, its c2_submit_opts) for C.
        keep: a list that must outlive the C call (it holds the buffers).
        Photons go as columns, passed without copying."""
        ev = ffi.new("c2_event *")
        keep.append(ev)
        ev.id, ev.seed, ev.max_steps, ev.want = self.event_id, self.seed, self.max_steps, self._want_bits()
        opts = ffi.new("c2_submit_opts *")
        keep.append(opts)
        p = self.photons
        if p is not None and len(p):
            ev.nphotons = len(p)
            for field, a in (("pos", p.pos), ("dir", p.dir), ("wavelength", p.wavelengths), ("pol", p.pol),
                             ("time", p.t), ("weight", p.weights)):
                if a is not None:
                    buf = ffi.from_buffer("float[]", a)
                    keep.append(buf)
                    setattr(ev.columns, field, buf)
        if self.sources:
            src = self._sources_array()
            keep.append(src)
            ev.sources = ffi.cast("c2_source *", ffi.from_buffer(src))
            ev.nsources = len(src)
        if self.spectra is not None:
            ev.spectra = ffi.from_buffer("float[]", self.spectra)
            keep.append(ev.spectra)
            ev.nspectra = len(self.spectra)
            opts.spectra_nwl = self.spectra.shape[1]
        name = ffi.new("char[]", self.geometry.encode())
        keep.append(name)
        opts.geometry = name
        if self.digest:
            digest = ffi.new("char[]", self.digest.encode())
            keep.append(digest)
            opts.digest = digest
        opts.deadline_ms = 0 if self.deadline is None else max(1, int(round(self.deadline * 1000)))
        opts.priority = self.priority
        return ev, opts


def _array(ptr, n, ctype, dtype):
    """A numpy copy of n C structs (the C memory is freed after this)."""
    if n == 0:
        return np.zeros(0, dtype)
    return np.frombuffer(ffi.buffer(ptr, n * ffi.sizeof(ctype)), dtype=dtype).copy()


class Result:
    """A finished event.

    hits: structured array (photon_id, channel, time, wavelength, pos (3),
    flags), sorted by photon id; photons: the end state of every photon
    (Photons, by photon id) when asked for; channels: structured array
    (channel, count, first_time, charge) when asked for; counters: photons,
    steps, reemissions, max_steps, nan; timing: queued_ms and run_ms at the
    daemon (None in process); ticket: the daemon's number for the event.
    """

    def __init__(self, r, event_id, ticket=0, timing=None, want=WANT):
        self.event_id = event_id
        self.ticket = ticket
        self.hits = _array(r.hits, r.nhits, "c2_hit", HIT_DTYPE) if "hits" in want else None
        self.channels = _array(r.channels, r.nchannels, "c2_channel_summary", CHANNEL_DTYPE) \
            if "channels" in want else None
        self.photons = None
        if "photons" in want:
            rec = _array(r.photons, r.nphotons, "c2_photon", PHOTON_DTYPE)
            self.photons = Photons(rec["pos"], rec["dir"], rec["pol"], rec["wavelength"], rec["time"],
                                   rec["last_hit_triangle"], rec["flags"], rec["weight"], rec["channel"],
                                   rec["steps"])
        self.counters = {"photons": r.ntotal, "steps": r.steps, "reemissions": r.nreemit,
                         "max_steps": r.nmaxsteps, "nan": r.nnan}
        self.timing = timing

    @property
    def nhits(self):
        return None if self.hits is None else len(self.hits)

    def __repr__(self):
        return (f"<Result event_id={self.event_id} photons={self.counters['photons']} "
                f"hits={self.nhits} ticket={self.ticket}>")
