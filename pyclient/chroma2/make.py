"""Meshes of simple solids, a PMT solid, and placement helpers.

Units: mm. Every mesh made here is closed, centred on the origin and
oriented outward (normal (v1 - v0) x (v2 - v0) points out, volume > 0).
"""
import numpy as np

from .geometry import Mesh, Solid, _integer, _number

__all__ = ["box", "sphere", "cylinder", "pmt", "rotation_to", "fibonacci_sphere"]


def _length(x, what):
    return _number(x, what, 1e-30, 1e9)


def _quads(q):
    """Triangles (a, b, c) and (a, c, d) of quads (a, b, c, d), wound as the quads."""
    q = np.asarray(q)
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])


def box(dx, dy, dz):
    """A box of full edge lengths dx, dy, dz (mm): 8 vertices, 12 triangles."""
    h = 0.5 * np.array([_length(dx, "box: dx"), _length(dy, "box: dy"), _length(dz, "box: dz")])
    bits = (np.arange(8)[:, None] >> np.arange(3)) & 1  # bit k of vertex i: + side on axis k
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return Mesh((2 * bits - 1) * h, _quads(quads))


_PHI = (1 + 5**0.5) / 2
_ICOSAHEDRON_VERTICES = np.array([
    (-1, _PHI, 0), (1, _PHI, 0), (-1, -_PHI, 0), (1, -_PHI, 0), (0, -1, _PHI), (0, 1, _PHI),
    (0, -1, -_PHI), (0, 1, -_PHI), (_PHI, 0, -1), (_PHI, 0, 1), (-_PHI, 0, -1), (-_PHI, 0, 1)])
_ICOSAHEDRON_FACES = np.array([
    (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
    (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7),
    (9, 8, 1)])


def sphere(radius, subdivisions=3):
    """An icosphere of circumradius ``radius`` (mm): an icosahedron whose triangles are split in
    four ``subdivisions`` times (0..8), new vertices pushed onto the sphere; 20 * 4**subdivisions
    triangles. Its volume approaches 4/3 pi r^3 from below."""
    radius = _length(radius, "sphere: radius")
    level = _integer(subdivisions, "sphere: subdivisions", 0, 8)
    v = _ICOSAHEDRON_VERTICES / np.linalg.norm(_ICOSAHEDRON_VERTICES[0])
    f = _ICOSAHEDRON_FACES
    for _ in range(level):
        edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = v[unique[:, 0]] + v[unique[:, 1]]
        ab, bc, ca = (len(v) + inverse.reshape(-1, 3)).T
        a, b, c = f.T
        v = np.vstack([v, mid / np.linalg.norm(mid, axis=1, keepdims=True)])
        f = np.concatenate([np.stack(t, axis=1) for t in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return Mesh(radius * v, f)


def _rings(n):
    """Angles 2 pi k / n, k = 0..n-1."""
    return 2 * np.pi * np.arange(n) / n


def cylinder(radius, height, segments=64):
    """A cylinder along z, centred, its circular section a regular ``segments``-gon inscribed in
    ``radius`` (mm): volume segments / 2 * r^2 sin(2 pi / segments) * height."""
    r, h = _length(radius, "cylinder: radius"), _length(height, "cylinder: height")
    n = _integer(segments, "cylinder: segments", 3, 1 << 20)
    phi = _rings(n)
    ring = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    v = np.vstack([np.column_stack([ring, np.full(n, -h / 2)]), np.column_stack([ring, np.full(n, h / 2)]),
                   [(0, 0, -h / 2), (0, 0, h / 2)]])
    i = np.arange(n)
    j = (i + 1) % n
    bottom, top = np.full(n, 2 * n), np.full(n, 2 * n + 1)
    f = np.concatenate([_quads(np.stack([i, j, n + j, n + i], axis=1)), np.stack([bottom, j, i], axis=1),
                        np.stack([top, n + i, n + j], axis=1)])
    return Mesh(v, f)


def pmt(radius, cathode, body, material1, material2, segments=24, rings=8):
    """A PMT as one closed Solid: a hemispherical dome of ``radius`` (mm) pointing +z, the
    photocathode, with Surface ``cathode``; closed by a flat disk at z = 0 with Surface ``body``.
    material1 is inside (glass), material2 outside. The dome has segments * (2 rings - 1)
    triangles and comes first, the disk segments; triangle_surface holds the surfaces, so
    Detector.add_pmt puts the channel on the dome only. Aim it with rotation_to."""
    r = _length(radius, "pmt: radius")
    ns = _integer(segments, "pmt: segments", 3, 4096)
    nr = _integer(rings, "pmt: rings", 1, 4096)
    theta = 0.5 * np.pi * np.arange(1, nr + 1) / nr  # from the apex; the last ring is the rim
    phi = _rings(ns)
    ring = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.outer(np.sin(theta), np.sin(phi)),
                     np.outer(np.cos(theta), np.ones(ns))], axis=-1).reshape(-1, 3)
    ring[-ns:, 2] = 0.0  # rim exactly in the base plane
    v = r * np.vstack([[(0, 0, 1)], ring, [(0, 0, 0)]])
    s = np.arange(ns)

    def at(k, s):  # vertex of ring k (1..nr), segment s
        return 1 + (k - 1) * ns + s % ns

    cap = np.stack([np.zeros(ns, int), at(1, s), at(1, s + 1)], axis=1)
    bands = [_quads(np.stack([at(k, s), at(k + 1, s), at(k + 1, s + 1), at(k, s + 1)], axis=1))
             for k in range(1, nr)]
    disk = np.stack([np.full(ns, len(v) - 1), at(nr, s + 1), at(nr, s)], axis=1)
    f = np.concatenate([cap, *bands, disk])
    ndome = len(f) - ns
    return Solid(Mesh(v, f), material1, material2, triangle_surface=[cathode] * ndome + [body] * ns)


def rotation_to(direction):
    """The smallest proper rotation (3x3) that maps +z onto ``direction`` (normalised here); the
    half turn about x for -z. ``rotation_to(-p / |p|)`` aims a make.pmt dome at p = 0 from p."""
    d = np.array(direction, dtype=float)
    norm = np.linalg.norm(d) if d.shape == (3,) else np.nan
    if not 0 < norm < np.inf:
        raise ValueError(f"rotation_to: direction must be 3 finite values, not all zero, got {direction!r}")
    x, y, z = d / norm
    s2 = x * x + y * y  # sin^2 of the angle from +z
    if s2 == 0:
        return np.diag([1.0, 1.0, 1.0] if z > 0 else [1.0, -1.0, -1.0])
    c1 = 1 + z if z >= 0 else s2 / (1 - z)  # 1 + cos, without cancellation near -z
    k = np.array([[0, 0, x], [0, 0, y], [-x, -y, 0]])  # cross-product matrix of +z x d
    vv = np.array([[y * y, -x * y, 0], [-x * y, x * x, 0], [0, 0, 0]])
    return z * np.eye(3) + k + vv / c1


def fibonacci_sphere(n):
    """n unit vectors (n, 3) on the Fibonacci lattice, the built-in detector's PMT directions:
    z = 1 - (2k + 1) / n, azimuth k * pi * (3 - sqrt 5)."""
    n = _integer(n, "fibonacci_sphere: n", 1, 1 << 31)
    k = np.arange(n)
    z = 1 - (2 * k + 1) / n
    r = np.sqrt(1 - z * z)
    phi = k * np.pi * (3 - np.sqrt(5))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
