"""Geometries for chroma2's ``load_geometry`` request (proto/PROTOCOL.md).

Units: mm, ns, nm. Conventions are Chroma's: a Solid's ``material1`` is
inside its mesh and ``material2`` outside; a triangle's outward normal is
(v1 - v0) x (v2 - v0), so a closed mesh has positive volume.

A per-wavelength property (refractive index, lengths, probabilities,
spectra) may be given in any of these forms, resolved on the Geometry's
wavelength grid only when the message is built:

- a scalar, flat in wavelength;
- a 1-D array of the grid's length (values on the grid);
- a tuple ``(wavelengths, values)``, interpolated with ``numpy.interp`` (held
  constant beyond its ends);
- a 2-D array of ``(wavelength, value)`` rows, shape (k, 2), as Chroma stores
  properties (interpolated the same way);
- a callable ``f(wavelengths_nm) -> values``.

Materials, surfaces and meshes are plain objects shared by identity: one used
by many solids is sent once. Every value the daemon checks is checked here
first, so a bad geometry fails with a ValueError naming the material,
surface, mesh or solid before anything is sent.
"""
import copy
import numbers

import numpy as np

__all__ = ["Material", "Surface", "Mesh", "Solid", "Geometry", "Detector", "load_mesh", "DEFAULT_WAVELENGTHS"]

# The built-in detector's grid (kernels/geometry/detector.c): 200..800 nm.
DEFAULT_WAVELENGTHS = (200.0, 5.0, 121)

# Limits of the daemon (engine.h, proto/proto.h).
MAX_MATERIALS = 65535
MAX_SURFACES = 65535
MAX_TRIANGLES = 0x7FFFFFFF
MAX_WAVELENGTHS = 4096
MAX_ELEMENTS = 1 << 20  # map entries and array elements in one message
_ENVELOPE_ELEMENTS = 12  # the request's own map: v, id, type, name, replace, geometry
_NAME_MAX = 64  # bytes of a material or surface name
_COORD_MAX = 1e9  # mm, vertices and shifts
_INT32_MAX = 2**31 - 1


def _bytes(a, dtype="<f4"):
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def _number(x, what, lo, hi):
    """A real scalar in [lo, hi] as a float."""
    if not isinstance(x, numbers.Real) or not lo <= float(x) <= hi:
        raise ValueError(f"{what} is {x!r} (must be a number in [{lo:g}, {hi:g}])")
    return float(x)


def _integer(x, what, lo, hi):
    if not isinstance(x, numbers.Integral) or isinstance(x, bool) or not lo <= x <= hi:
        raise ValueError(f"{what} is {x!r} (must be an integer in [{lo}, {hi}])")
    return int(x)


def _floats(x, what):
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {x!r:.60} is not numbers (give a scalar, values on the grid, a "
                         f"(wavelengths, values) tuple, a (k, 2) table or a callable)") from None


def _interp(wavelengths, values, grid, what):
    wl = _floats(wavelengths, what)
    if wl.ndim != 1 or wl.size == 0:
        raise ValueError(f"{what}: the wavelengths of a (wavelengths, values) pair must be a non-empty 1-D array")
    try:
        v = np.broadcast_to(_floats(values, what), wl.shape)
    except ValueError:
        raise ValueError(f"{what}: {np.shape(values)} values for {wl.size} wavelengths") from None
    order = np.argsort(wl, kind="stable")
    wl, v = wl[order], v[order]
    if not np.isfinite(wl).all() or (np.diff(wl) <= 0).any():
        raise ValueError(f"{what}: wavelengths must be finite and distinct")
    return np.interp(grid, wl, v)


def _resolve(value, grid, what):
    """Any documented property form -> float64 array on grid, all finite."""
    if callable(value):
        v = _floats(value(grid.copy()), what)
    elif isinstance(value, tuple) and len(value) == 2 and np.ndim(value[0]) == 1:
        v = _interp(value[0], value[1], grid, what)
    else:
        v = _floats(value, what)
        if v.ndim == 2 and v.shape[1] == 2:
            v = _interp(v[:, 0], v[:, 1], grid, what)
    if v.ndim == 0:
        v = np.full(grid.shape, float(v))
    if v.shape != grid.shape:
        raise ValueError(f"{what}: {v.shape} values for a grid of {grid.size} wavelengths (give a scalar, "
                         f"{grid.size} values, a (wavelengths, values) tuple, a (k, 2) table or a callable)")
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}[{i}] is {v[i]} at {grid[i]:g} nm (must be finite)")
    return v


def _rotation(rotation, what):
    """A proper rotation: orthonormal with det +1, within 1e-4."""
    r = np.array(rotation, dtype=float)
    if r.shape != (3, 3) or not np.isfinite(r).all():
        raise ValueError(f"{what}: rotation must be a finite 3x3 matrix, got {rotation!r:.80}")
    dev = float(np.abs(r @ r.T - np.eye(3)).max())
    det = float(np.linalg.det(r))
    if dev > 1e-4 or abs(det - 1.0) > 1e-4:
        raise ValueError(f"{what}: rotation is not a proper rotation (max |R R^T - I| = {dev:.3g}, det = {det:.6g}; "
                         f"need orthonormal with det +1 within 1e-4)")
    return r


def _displacement(displacement, what):
    d = np.array(displacement, dtype=float)
    if d.shape != (3,) or not (np.abs(d) <= _COORD_MAX).all():
        raise ValueError(f"{what}: displacement must be 3 finite values within 1e9 mm, got {displacement!r:.80}")
    return d


def _channel(channel, what):
    return None if channel is None else _integer(channel, what, -1, _INT32_MAX)


def _name(name, what):
    if not isinstance(name, str) or len(name.encode()) > _NAME_MAX or "\0" in name:
        raise ValueError(f"{what}: name {name!r} must be a string of at most {_NAME_MAX} UTF-8 bytes without NUL")
    return name


class _Optical:
    """Shared by Material and Surface: per-wavelength properties and reemission."""

    _TABLES = ()

    def set(self, prop, value, wavelengths=None):
        """Sets a per-wavelength property, as Chroma's ``set``: ``value`` is a scalar or values at
        ``wavelengths`` (nm), or, when ``wavelengths`` is None, any form of the module docstring."""
        if prop not in self._TABLES:
            raise ValueError(f"{type(self).__name__} {self.name!r}: no property {prop!r} (one of {self._TABLES})")
        setattr(self, prop, value if wavelengths is None else (np.asarray(wavelengths, dtype=float), value))

    def _pack_reemission(self, geo, what, out):
        prob = geo._table(self.reemission_prob, f"{what}: reemission_prob", 0.0, 1.0)
        if prob.any():
            if self.reemission_spectrum is None:
                raise ValueError(f"{what}: reemission_prob > 0 needs a reemission_spectrum")
            out["reemission_prob"] = _bytes(prob)
            out["reemission_cdf"] = _bytes(geo.cdf(self.reemission_spectrum, f"{what}: reemission_spectrum"))
        tau = _number(self.reemission_tau, f"{what}: reemission_tau (ns)", 0.0, 1e9)
        if tau:
            out["reemission_tau"] = tau
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class Material(_Optical):
    """A bulk material. Lengths in mm (use a large value for none); ``reemission_prob`` is the
    fraction of absorbed photons reemitted, with a wavelength drawn from ``reemission_spectrum``
    (a density, not a CDF) after an exponential delay of mean ``reemission_tau`` ns."""

    _TABLES = ("refractive_index", "absorption_length", "scattering_length", "reemission_prob",
               "reemission_spectrum")

    def __init__(self, name, refractive_index=1.0, absorption_length=1e9, scattering_length=1e9,
                 reemission_prob=0.0, reemission_spectrum=None, reemission_tau=0.0):
        self.name = name
        self.refractive_index = refractive_index
        self.absorption_length = absorption_length
        self.scattering_length = scattering_length
        self.reemission_prob = reemission_prob
        self.reemission_spectrum = reemission_spectrum
        self.reemission_tau = reemission_tau

    def _pack(self, geo, what):
        out = {
            "name": _name(self.name, what),
            "refractive_index": _bytes(geo._table(self.refractive_index, f"{what}: refractive_index", 1.0, 1e3)),
            "absorption_length": _bytes(geo._table(self.absorption_length, f"{what}: absorption_length (mm)",
                                                   1e-30, 1e30)),
            "scattering_length": _bytes(geo._table(self.scattering_length, f"{what}: scattering_length (mm)",
                                                   1e-30, 1e30)),
        }
        return self._pack_reemission(geo, what, out)


class Surface(_Optical):
    """An optical surface. Model ``"default"``: per wavelength, probabilities ``detect``,
    ``absorb``, ``reflect_diffuse`` and ``reflect_specular`` summing to at most 1, the rest
    Fresnel. Model ``"wls"``: ``absorb`` is the shifting probability, ``reemission_prob`` the
    fraction of those reemitted from ``reemission_spectrum`` (a density), the rest Fresnel."""

    _TABLES = ("detect", "absorb", "reflect_diffuse", "reflect_specular", "reemission_prob", "reemission_spectrum")
    _PROBS = _TABLES[:4]

    def __init__(self, name, model="default", detect=0.0, absorb=0.0, reflect_diffuse=0.0, reflect_specular=0.0,
                 reemission_prob=0.0, reemission_spectrum=None, reemission_tau=0.0):
        self.name = name
        self.model = model
        self.detect = detect
        self.absorb = absorb
        self.reflect_diffuse = reflect_diffuse
        self.reflect_specular = reflect_specular
        self.reemission_prob = reemission_prob
        self.reemission_spectrum = reemission_spectrum
        self.reemission_tau = reemission_tau

    def _pack(self, geo, what):
        if self.model not in ("default", "wls"):
            raise ValueError(f"{what}: model is {self.model!r} (must be 'default' or 'wls')")
        out = {"name": _name(self.name, what), "model": self.model}
        tables = {p: geo._table(getattr(self, p), f"{what}: {p}", 0.0, 1.0) for p in self._PROBS}
        if self.model == "default":
            total = sum(tables.values())
            i = int(np.argmax(total))
            if total[i] > np.float32(1 + 1e-5):
                raise ValueError(f"{what}: detect + absorb + reflect_diffuse + reflect_specular is {total[i]:g} at "
                                 f"{geo.wavelengths[i]:g} nm (must be <= 1)")
        out.update((p, _bytes(v)) for p, v in tables.items() if v.any())  # all-zero tables are left out
        return self._pack_reemission(geo, what, out)


class Mesh:
    """A triangle mesh: ``vertices`` (n, 3) float, mm, and ``triangles`` (m, 3) vertex indices;
    a triangle's outward normal is (v1 - v0) x (v2 - v0). The arrays are copied and read-only."""

    def __init__(self, vertices, triangles):
        v = np.array(vertices, dtype=float)
        t = np.array(triangles)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
            raise ValueError(f"Mesh: vertices must have shape (n, 3) with n >= 3, got {v.shape}")
        if t.ndim != 2 or t.shape[1] != 3 or len(t) < 1 or t.dtype.kind not in "iu":
            raise ValueError(f"Mesh: triangles must be integers of shape (m, 3) with m >= 1, got {t.shape} {t.dtype}")
        bad = ~(np.abs(v) <= _COORD_MAX).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"Mesh: vertex {i} is {v[i].tolist()} (must be finite, |x| <= 1e9 mm)")
        t = t.astype(np.int64)
        bad = ((t < 0) | (t >= len(v))).any(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"Mesh: triangle {i} {tuple(int(x) for x in t[i])} refers to a vertex outside "
                             f"0..{len(v) - 1}")
        # zero area as the daemon computes it, in float32
        v32 = v.astype(np.float32)
        n = np.cross(v32[t[:, 1]] - v32[t[:, 0]], v32[t[:, 2]] - v32[t[:, 0]])
        bad = ~(np.einsum("ij,ij->i", n, n) > 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"Mesh: triangle {i} {tuple(int(x) for x in t[i])} has zero area")
        v.flags.writeable = t.flags.writeable = False
        self.vertices, self.triangles = v, t

    def __len__(self):
        return len(self.triangles)

    def __repr__(self):
        return f"Mesh({len(self.vertices)} vertices, {len(self)} triangles)"

    def volume(self):
        """Signed volume, mm^3: positive when the normals point outward."""
        p = self.vertices - self.vertices.mean(axis=0)
        a, b, c = (p[self.triangles[:, k]] for k in range(3))
        return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)

    def is_closed(self):
        """True when every edge is shared by exactly two triangles that run it in opposite directions."""
        n = len(self.vertices)
        a, b = self.triangles.ravel(), self.triangles[:, [1, 2, 0]].ravel()
        forward = a * n + b
        return len(np.unique(forward)) == forward.size and bool(np.isin(b * n + a, forward).all())

    def transformed(self, rotation=None, displacement=None):
        """A new mesh with every vertex v moved to rotation @ v + displacement (mm)."""
        v = self.vertices
        if rotation is not None:
            v = v @ _rotation(rotation, "Mesh.transformed").T
        if displacement is not None:
            v = v + _displacement(displacement, "Mesh.transformed")
        return Mesh(v, self.triangles)


class Solid:
    """A mesh with ``material1`` inside and ``material2`` outside, an optional ``surface`` and
    detector ``channel`` (None: none) for all its triangles.

    ``triangle_surface``: optional sequence, one entry per triangle of the mesh, of a Surface or
    None (no surface); it replaces ``surface`` triangle by triangle. ``triangle_channel``:
    optional integers per triangle (-1: none) replacing ``channel``. Both let one closed solid
    carry a photocathode on part of it."""

    def __init__(self, mesh, material1, material2, surface=None, channel=None, triangle_surface=None,
                 triangle_channel=None):
        if not isinstance(mesh, Mesh):
            raise TypeError(f"Solid: mesh must be a Mesh, got {type(mesh).__name__}")
        for what, m in (("material1", material1), ("material2", material2)):
            if not isinstance(m, Material):
                raise TypeError(f"Solid: {what} must be a Material, got {type(m).__name__}")
        if surface is not None and not isinstance(surface, Surface):
            raise TypeError(f"Solid: surface must be a Surface or None, got {type(surface).__name__}")
        self.mesh, self.material1, self.material2, self.surface = mesh, material1, material2, surface
        self.channel = _channel(channel, "Solid: channel")
        self.triangle_surface = None
        if triangle_surface is not None:
            ts = tuple(triangle_surface)
            if len(ts) != len(mesh):
                raise ValueError(f"Solid: triangle_surface has {len(ts)} entries for {len(mesh)} triangles")
            for i, s in enumerate(ts):
                if s is not None and not isinstance(s, Surface):
                    raise TypeError(f"Solid: triangle_surface[{i}] is a {type(s).__name__} (Surface or None)")
            self.triangle_surface = ts
        self.triangle_channel = None
        if triangle_channel is not None:
            tc = np.array(triangle_channel)
            if tc.shape != (len(mesh),) or tc.dtype.kind not in "iu":
                raise ValueError(f"Solid: triangle_channel must be {len(mesh)} integers, got {tc.shape} {tc.dtype}")
            bad = (tc < -1) | (tc > _INT32_MAX)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"Solid: triangle_channel[{i}] is {tc[i]} (must be >= 0, or -1 for none)")
            tc = tc.astype(np.int32)
            tc.flags.writeable = False
            self.triangle_channel = tc

    def __repr__(self):
        return f"Solid({self.mesh!r}, {self.material1!r} inside, {self.material2!r} outside)"


class _Index:
    """Objects numbered by identity in first-use order; None is -1."""

    def __init__(self):
        self.objects, self._ids = [], {}

    def add(self, obj):
        if obj is None:
            return -1
        k = self._ids.get(id(obj))
        if k is None:
            k = self._ids[id(obj)] = len(self.objects)
            self.objects.append(obj)
        return k


def _elements(obj):
    """Map entries and array elements of a message value, counted as the daemon does."""
    if isinstance(obj, dict):
        return 2 * len(obj) + sum(_elements(v) for v in obj.values())
    if isinstance(obj, list):
        return len(obj) + sum(_elements(v) for v in obj)
    return 0


def _grid(wavelengths):
    """(min, step, n) from a (min, step, n) tuple or an evenly spaced array (nm)."""
    if isinstance(wavelengths, tuple) and len(wavelengths) == 3:
        lo = _number(wavelengths[0], "Geometry: wavelength min (nm)", 1e-3, 1e6)
        step = _number(wavelengths[1], "Geometry: wavelength step (nm)", 1e-6, 1e6)
        n = _integer(wavelengths[2], "Geometry: number of wavelengths", 2, MAX_WAVELENGTHS)
        return lo, step, n
    w = np.asarray(wavelengths, dtype=float)
    if w.ndim != 1 or len(w) < 2:
        raise ValueError("Geometry: wavelengths must be a (min, step, n) tuple or an evenly spaced array")
    step = (w[-1] - w[0]) / (len(w) - 1)
    if not np.isfinite(w).all() or np.abs(w - (w[0] + step * np.arange(len(w)))).max() > 1e-4 * abs(step):
        raise ValueError(f"Geometry: wavelengths {w[:4]}... are not evenly spaced")
    return _grid((float(w[0]), float(step), len(w)))


class Geometry:
    """Solids placed on one wavelength grid: ``wavelengths`` is a (min, step, n) tuple (nm) or an
    evenly spaced array; None is the built-in detector's 200..800 nm in 5 nm steps.

    ``solids``, ``solid_rotations`` and ``solid_displacements`` list the placements (None when
    not given); solid k's vertex v goes to rotation @ v + displacement."""

    def __init__(self, wavelengths=None):
        self.wavelength_grid = _grid(DEFAULT_WAVELENGTHS if wavelengths is None else wavelengths)
        lo, step, n = self.wavelength_grid
        self.wavelengths = lo + step * np.arange(n)
        self.wavelengths.flags.writeable = False
        self.solids, self.solid_rotations, self.solid_displacements = [], [], []

    def add_solid(self, solid, rotation=None, displacement=None):
        """Places solid (rotation: 3x3 proper rotation; displacement: mm); returns its index."""
        if not isinstance(solid, Solid):
            raise TypeError(f"add_solid: expected a Solid, got {type(solid).__name__}")
        what = f"solid {len(self.solids)}"
        rotation = None if rotation is None else _rotation(rotation, what)
        displacement = None if displacement is None else _displacement(displacement, what)
        self.solids.append(solid)
        self.solid_rotations.append(rotation)
        self.solid_displacements.append(displacement)
        return len(self.solids) - 1

    @property
    def channels(self):
        """1 + the largest channel on any triangle, 0 if none (the daemon's channel count)."""
        top = -1
        for s in self.solids:
            if s.triangle_channel is not None:
                top = max(top, int(s.triangle_channel.max()))
            elif s.channel is not None:
                top = max(top, s.channel)
        return top + 1

    def _table(self, value, what, lo, hi):
        """A property resolved on the grid as float32, each value checked to lie in [lo, hi]."""
        v = _resolve(value, self.wavelengths, what).astype(np.float32)
        bad = ~((v >= np.float32(lo)) & (v <= np.float32(hi)))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{what}[{i}] is {v[i]:g} at {self.wavelengths[i]:g} nm (must be in [{lo:g}, {hi:g}])")
        return v

    def cdf(self, spectrum, what="spectrum"):
        """The normalised CDF (float32, ending at 1) on the grid of a spectrum given as a density in any
        property form; integrated by the trapezoid rule, so cdf[0] is 0."""
        pdf = self._table(spectrum, what, 0.0, np.inf).astype(float)
        c = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]))])
        if not 0 < c[-1] < np.inf:
            raise ValueError(f"{what}: integrates to {c[-1]:g} on the grid (must be finite and > 0)")
        c = (c / c[-1]).astype(np.float32)
        c[-1] = 1.0
        return c

    def to_message(self):
        """The ``geometry`` value of a load_geometry request: a dict of str, int, float, bytes,
        lists and dicts, ready for msgpack. Materials, surfaces and meshes are numbered by identity
        in first-use order (per solid: mesh, material1, material2, surface, then triangle_surface).
        Raises ValueError naming the offender when the daemon would reject the geometry."""
        if not self.solids:
            raise ValueError("geometry: no solids")
        materials, surfaces, meshes = _Index(), _Index(), _Index()
        packed_ts = {}  # id(triangle_surface tuple) -> bytes: PMT copies share one tuple
        solids, ntris = [], 0
        for k, (s, rot, shift) in enumerate(zip(self.solids, self.solid_rotations, self.solid_displacements)):
            d = {"mesh": meshes.add(s.mesh), "inner": materials.add(s.material1),
                 "outer": materials.add(s.material2), "surface": surfaces.add(s.surface),
                 "channel": -1 if s.channel is None else s.channel}
            if rot is not None:
                d["rot"] = _bytes(rot)
            if shift is not None:
                d["shift"] = _bytes(shift)
            if s.triangle_surface is not None:
                key = id(s.triangle_surface)
                if key not in packed_ts:
                    packed_ts[key] = _bytes([surfaces.add(x) for x in s.triangle_surface], "<i4")
                d["triangle_surface"] = packed_ts[key]
            if s.triangle_channel is not None:
                d["triangle_channel"] = _bytes(s.triangle_channel, "<i4")
            ntris += len(s.mesh)
            if ntris > MAX_TRIANGLES:
                raise ValueError(f"solid {k}: the geometry would have {ntris} triangles (limit {MAX_TRIANGLES})")
            solids.append(d)
        for what, index, limit in (("materials", materials, MAX_MATERIALS), ("surfaces", surfaces, MAX_SURFACES)):
            if len(index.objects) > limit:
                raise ValueError(f"geometry: {len(index.objects)} {what} (limit {limit})")
        lo, step, n = self.wavelength_grid
        msg = {
            "wavelengths": {"min": lo, "step": step, "n": n},
            "materials": [m._pack(self, f"material {i} ({m.name!r})") for i, m in enumerate(materials.objects)],
            "surfaces": [s._pack(self, f"surface {i} ({s.name!r})") for i, s in enumerate(surfaces.objects)],
            "meshes": [{"vertices": _bytes(m.vertices), "triangles": _bytes(m.triangles, "<u4")}
                       for m in meshes.objects],
            "solids": solids,
        }
        count = _elements(msg) + _ENVELOPE_ELEMENTS
        if count > MAX_ELEMENTS:
            raise ValueError(f"geometry: {len(solids)} solids make {count} map entries and array elements in the "
                             f"message (limit {MAX_ELEMENTS}); merge solids into fewer meshes")
        return msg


class Detector(Geometry):
    """A Geometry with PMTs: each ``add_pmt`` gives one solid a detector channel."""

    def __init__(self, wavelengths=None):
        super().__init__(wavelengths)
        self._pmt_channels = set()
        self._next_channel = 0

    def _detects(self, surface):
        return (surface is not None and surface.model == "default" and
                bool((_resolve(surface.detect, self.wavelengths, f"surface {surface.name!r}: detect") > 0).any()))

    def add_pmt(self, solid, rotation=None, displacement=None, channel_id=None):
        """Places a PMT and returns its channel: ``channel_id``, or when None one more than the
        largest PMT channel so far (from 0). The channel goes on the triangles whose surface
        detects (model default, detect > 0 somewhere on the grid): on the whole solid when it has
        no triangle_surface, else on those triangles only (e.g. the dome of make.pmt). ``solid`` is
        not modified; the placed copy shares its mesh, materials and surfaces."""
        k = len(self.solids)
        ch = self._next_channel if channel_id is None else _integer(channel_id, f"solid {k}: channel_id", 0,
                                                                    _INT32_MAX)
        if ch in self._pmt_channels:
            raise ValueError(f"solid {k}: channel {ch} is already a PMT's")
        pmt = copy.copy(solid)
        if solid.triangle_surface is None:
            if not self._detects(solid.surface):
                raise ValueError(f"solid {k}: a PMT needs a surface that detects, got {solid.surface!r}")
            pmt.channel, pmt.triangle_channel = ch, None
        else:
            flags = {id(s): self._detects(s) for s in {id(s): s for s in solid.triangle_surface}.values()}
            mask = np.fromiter((flags[id(s)] for s in solid.triangle_surface), bool, len(solid.mesh))
            if not mask.any():
                raise ValueError(f"solid {k}: no triangle of this PMT has a surface that detects")
            pmt.channel, pmt.triangle_channel = None, np.where(mask, ch, -1).astype(np.int32)
            pmt.triangle_channel.flags.writeable = False
        self.add_solid(pmt, rotation, displacement)
        self._pmt_channels.add(ch)
        self._next_channel = max(self._next_channel, ch + 1)
        return ch


def load_mesh(path, scale=1.0):
    """Reads an STL, OBJ or PLY file (anything trimesh reads) as a Mesh, vertices multiplied by
    ``scale`` (to mm). Needs the optional dependency trimesh; duplicate vertices are merged, the
    triangles' winding is kept as in the file."""
    try:
        import trimesh
    except ImportError as e:
        raise ImportError("load_mesh needs trimesh: pip install trimesh") from e
    scale = _number(scale, "load_mesh: scale", 1e-30, 1e30)
    m = trimesh.load(path, force="mesh")
    return Mesh(np.asarray(m.vertices, dtype=float) * scale, np.asarray(m.faces))
