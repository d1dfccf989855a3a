"""Tests of chroma2.geometry and chroma2.make against analytic references and PROTOCOL.md's
load_geometry layout. Pure Python + numpy (trimesh optional); no daemon."""
import numpy as np
import pytest

from chroma2 import geometry, make
from chroma2.geometry import Detector, Geometry, Material, Mesh, Solid, Surface

GRID = (200.0, 5.0, 121)  # the built-in detector's grid (kernels/geometry/detector.c)
WL = 200.0 + 5.0 * np.arange(121)


def f32(b):
    return np.frombuffer(b, dtype="<f4")


def i32(b):
    return np.frombuffer(b, dtype="<i4")


def u32(b):
    return np.frombuffer(b, dtype="<u4")


def outward(mesh):
    """For a convex mesh: every triangle's normal points away from the vertex centroid."""
    v = mesh.vertices[mesh.triangles]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return bool((np.einsum("ij,ij->i", n, v.mean(axis=1) - mesh.vertices.mean(axis=0)) > 0).all())


def simple():
    """Two materials, one surface, one box solid."""
    inside, outside = Material("inside", 1.5, 100.0), Material("outside")
    black = Surface("black", absorb=1.0)
    g = Geometry()
    g.add_solid(Solid(make.box(1, 2, 3), inside, outside, black))
    return g, inside, outside, black


# ---- make: analytic volumes, closed, outward ----

def test_box():
    m = make.box(2.0, 3.0, 5.0)
    assert m.volume() == pytest.approx(30.0, rel=1e-12)
    assert m.is_closed() and outward(m) and len(m) == 12
    assert np.allclose(m.vertices.min(axis=0), [-1, -1.5, -2.5]) and np.allclose(m.vertices.max(axis=0), [1, 1.5, 2.5])


def test_sphere_volume_converges_from_below():
    r, exact = 7.0, 4.0 / 3.0 * np.pi * 7.0**3
    deficits = []
    for level in range(6):
        m = make.sphere(r, level)
        assert len(m) == 20 * 4**level and m.is_closed() and outward(m)
        assert np.allclose(np.linalg.norm(m.vertices, axis=1), r)
        deficits.append(1 - m.volume() / exact)
    # inscribed polyhedron: always below; the deficit shrinks as the edge length squared
    assert deficits[0] == pytest.approx(1 - 2.5361507 / (4 / 3 * np.pi), rel=1e-6)  # the icosahedron
    for level, d in enumerate(deficits[1:], start=1):
        assert 0.4 * 4.0**-level < d < 0.6 * 4.0**-level


def test_cylinder():
    r, h = 3.0, 10.0
    for n in (3, 7, 64):
        m = make.cylinder(r, h, n)
        assert m.volume() == pytest.approx(0.5 * n * r * r * np.sin(2 * np.pi / n) * h, rel=1e-12)
        assert m.is_closed() and outward(m) and len(m) == 4 * n
    assert make.cylinder(r, h, 4096).volume() == pytest.approx(np.pi * r * r * h, rel=1e-5)


def test_pmt():
    cathode, body = Surface("cathode", detect=0.25, absorb=0.75), Surface("body", absorb=1.0)
    glass, water = Material("glass", 1.5), Material("water", 1.33)
    s = make.pmt(100.0, cathode, body, glass, water, segments=24, rings=8)
    m = s.mesh
    assert s.material1 is glass and s.material2 is water
    assert m.is_closed() and outward(m) and len(m) == 2 * 24 * 8
    hemisphere = 2.0 / 3.0 * np.pi * 100.0**3
    assert 0.97 * hemisphere < m.volume() < hemisphere
    assert m.vertices[:, 2].max() == pytest.approx(100.0) and m.vertices[:, 2].min() == 0.0
    v = m.vertices[m.triangles]
    normal_z = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])[:, 2]
    is_cathode = np.array([t is cathode for t in s.triangle_surface])
    is_body = np.array([t is body for t in s.triangle_surface])
    assert (is_cathode | is_body).all() and is_body.sum() == 24
    assert (v[is_body][:, :, 2] == 0).all() and (normal_z[is_body] < 0).all()  # the flat back
    assert (v[is_cathode].mean(axis=1)[:, 2] > 0).all()  # the dome, towards +z


def test_rotation_to():
    rng = np.random.default_rng(1)
    targets = np.vstack([rng.normal(size=(50, 3)), [[0, 0, 1], [0, 0, -1], [1e-9, 0, -1], [0, 3, 0], [-1, 0, 0]]])
    for t in targets:
        r = make.rotation_to(t)
        assert np.allclose(r @ [0, 0, 1], t / np.linalg.norm(t), atol=1e-12)
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.linalg.det(r) == pytest.approx(1.0)
    assert np.array_equal(make.rotation_to([0, 0, 2]), np.eye(3))
    with pytest.raises(ValueError, match="direction"):
        make.rotation_to([0, 0, 0])


def test_fibonacci_sphere():
    u = make.fibonacci_sphere(1000)
    assert u.shape == (1000, 3) and np.allclose(np.linalg.norm(u, axis=1), 1.0)
    assert np.abs(u.mean(axis=0)).max() < 1e-2  # evenly spread
    k = 17  # det_lattice in detector.c
    z = 1 - (2 * k + 1) / 1000
    phi = k * np.pi * (3 - np.sqrt(5))
    assert np.allclose(u[k], [np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z])


# ---- Mesh ----

def test_transformed_keeps_volume():
    m = make.sphere(5.0, 2)
    r = make.rotation_to([1, 2, 3])
    t = m.transformed(r, [100.0, -50.0, 7.0])
    assert t.volume() == pytest.approx(m.volume(), rel=1e-10) and t.is_closed()
    assert np.allclose(t.vertices, m.vertices @ r.T + [100.0, -50.0, 7.0])
    assert m.vertices.mean(axis=0) == pytest.approx([0, 0, 0], abs=1e-9)  # the original is untouched
    with pytest.raises(ValueError, match="proper rotation"):
        m.transformed(np.diag([1.0, 1.0, -1.0]))  # a mirror would turn it inside out


def test_volume_sign_and_open_meshes():
    m = make.box(1, 1, 1)
    flipped = Mesh(m.vertices, m.triangles[:, [0, 2, 1]])
    assert flipped.volume() == pytest.approx(-1.0) and flipped.is_closed()
    assert not Mesh(m.vertices, m.triangles[1:]).is_closed()  # a hole
    half_flipped = np.vstack([m.triangles[:6], m.triangles[6:, [0, 2, 1]]])
    assert not Mesh(m.vertices, half_flipped).is_closed()  # edges shared in the same direction
    assert not Mesh(m.vertices, np.vstack([m.triangles, m.triangles])).is_closed()  # edges in four triangles


def test_mesh_validation():
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"triangle 1 \(0, 1, 3\) refers to a vertex outside 0\.\.2"):
        Mesh(v, [[0, 1, 2], [0, 1, 3]])
    with pytest.raises(ValueError, match="triangle 0"):
        Mesh(v, [[-1, 1, 2]])
    with pytest.raises(ValueError, match=r"vertex 2 is \[0\.0, nan, 0\.0\]"):
        Mesh([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]], [[0, 1, 2]])
    with pytest.raises(ValueError, match="vertex 0"):
        Mesh([[2e9, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    with pytest.raises(ValueError, match=r"triangle 1 \(0, 1, 3\) has zero area"):
        Mesh(v + [[2, 0, 0]], [[0, 1, 2], [0, 1, 3]])  # collinear
    with pytest.raises(ValueError, match="shape"):
        Mesh([[0, 0], [1, 0], [0, 1]], [[0, 1, 2]])
    with pytest.raises(ValueError, match="integers"):
        Mesh(v, [[0.0, 1.0, 2.0]])
    assert len(Mesh(v, [[0, 1, 2]])) == 1


# ---- to_message: PROTOCOL.md layout ----

def test_message_layout():
    scint = Material("scint", refractive_index=(np.array([300.0, 500.0]), np.array([1.6, 1.5])),
                     absorption_length=lambda wl: wl * 10.0, scattering_length=5000.0,
                     reemission_prob=0.5, reemission_spectrum=lambda wl: (wl > 400) & (wl < 500), reemission_tau=2.5)
    world = Material("world")
    world.set("absorption_length", [1e3, 2e3], wavelengths=[200.0, 800.0])
    mirror = Surface("mirror", reflect_specular=0.9, absorb=0.1)
    wls = Surface("wls", model="wls", absorb=np.full(121, 0.3), reemission_prob=1.0,
                  reemission_spectrum=([450.0, 460.0, 470.0], [0.0, 1.0, 0.0]))
    g = Geometry(GRID)
    rot = make.rotation_to([1, 0, 0])
    assert g.add_solid(Solid(make.sphere(10.0, 1), scint, world, mirror)) == 0
    assert g.add_solid(Solid(make.box(1, 1, 1), world, scint, wls, channel=3), rot, [0, 0, 20.0]) == 1
    msg = g.to_message()

    assert set(msg) == {"wavelengths", "materials", "surfaces", "meshes", "solids"}
    assert msg["wavelengths"] == {"min": 200.0, "step": 5.0, "n": 121}
    mats = msg["materials"]
    assert [m["name"] for m in mats] == ["scint", "world"]
    assert set(mats[1]) == {"name", "refractive_index", "absorption_length", "scattering_length"}
    assert set(mats[0]) == set(mats[1]) | {"reemission_prob", "reemission_cdf", "reemission_tau"}
    for key in ("refractive_index", "absorption_length", "scattering_length", "reemission_prob", "reemission_cdf"):
        assert isinstance(mats[0][key], bytes) and len(mats[0][key]) == 4 * 121
    assert np.allclose(f32(mats[0]["refractive_index"]), np.interp(WL, [300, 500], [1.6, 1.5]))
    assert np.allclose(f32(mats[0]["absorption_length"]), WL * 10.0)
    assert np.allclose(f32(mats[1]["absorption_length"]), 1e3 + (WL - 200) / 600 * 1e3)
    assert np.allclose(f32(mats[1]["refractive_index"]), 1.0) and np.allclose(f32(mats[1]["scattering_length"]), 1e9)
    assert mats[0]["reemission_tau"] == 2.5 and np.allclose(f32(mats[0]["reemission_prob"]), 0.5)
    cdf = f32(mats[0]["reemission_cdf"])  # flat density on (400, 500): linear ramp between the grid points
    assert cdf[-1] == 1.0 and (np.diff(cdf) >= 0).all()
    assert np.allclose(cdf, np.clip((WL - 402.5) / 95.0, 0, 1), atol=1e-6)

    surfs = msg["surfaces"]
    assert surfs[0] == {"name": "mirror", "model": "default", "absorb": surfs[0]["absorb"],
                        "reflect_specular": surfs[0]["reflect_specular"]}  # all-zero tables left out
    assert np.allclose(f32(surfs[0]["reflect_specular"]), 0.9) and len(surfs[0]["absorb"]) == 4 * 121
    assert surfs[1]["model"] == "wls" and "reemission_tau" not in surfs[1]
    cdf = f32(surfs[1]["reemission_cdf"])
    assert np.allclose(cdf[WL <= 450], 0) and np.allclose(cdf[WL >= 470], 1) and cdf[WL == 460] == pytest.approx(0.5)

    meshes = msg["meshes"]
    assert len(meshes) == 2
    sphere = make.sphere(10.0, 1)
    assert len(meshes[0]["vertices"]) == 12 * len(sphere.vertices) and len(meshes[0]["triangles"]) == 12 * len(sphere)
    assert np.allclose(f32(meshes[0]["vertices"]).reshape(-1, 3), sphere.vertices)
    assert np.array_equal(u32(meshes[0]["triangles"]).reshape(-1, 3), sphere.triangles)

    s0, s1 = msg["solids"]
    assert s0 == {"mesh": 0, "inner": 0, "outer": 1, "surface": 0, "channel": -1}  # no rot/shift when not given
    assert {k: s1[k] for k in ("mesh", "inner", "outer", "surface", "channel")} == \
        {"mesh": 1, "inner": 1, "outer": 0, "surface": 1, "channel": 3}
    assert np.allclose(f32(s1["rot"]).reshape(3, 3), rot) and np.allclose(f32(s1["shift"]), [0, 0, 20])
    assert geometry._elements(msg) < 1000


def test_dedup_by_identity():
    a, a_twin, b = Material("a", 1.3), Material("a", 1.3), Material("b")
    s, s_twin = Surface("s", absorb=1.0), Surface("s", absorb=1.0)
    box = make.box(1, 1, 1)
    g = Geometry()
    g.add_solid(Solid(box, b, a, s))  # first use: b, a; surface s
    g.add_solid(Solid(box, a, a_twin, s_twin))
    g.add_solid(Solid(make.box(1, 1, 1), a, b, None))
    msg = g.to_message()
    assert [m["name"] for m in msg["materials"]] == ["b", "a", "a"]
    assert len(msg["surfaces"]) == 2 and len(msg["meshes"]) == 2
    assert [(x["mesh"], x["inner"], x["outer"], x["surface"]) for x in msg["solids"]] == \
        [(0, 0, 1, 0), (0, 1, 2, 1), (1, 1, 0, -1)]


def test_triangle_surface_and_channel():
    cathode, body = Surface("cathode", detect=0.3), Surface("body", absorb=1.0)
    glass, water = Material("glass", 1.5), Material("water", 1.33)
    tube = make.pmt(10.0, cathode, body, glass, water, segments=6, rings=2)
    n = len(tube.mesh)
    g = Geometry()
    g.add_solid(Solid(tube.mesh, glass, water, body, channel=9, triangle_surface=[None] * (n - 1) + [cathode],
                      triangle_channel=[-1] * (n - 1) + [5]))
    g.add_solid(tube)
    msg = g.to_message()
    s0, s1 = msg["solids"]
    assert [s["name"] for s in msg["surfaces"]] == ["body", "cathode"]
    assert np.array_equal(i32(s0["triangle_surface"]), [-1] * (n - 1) + [1])
    assert np.array_equal(i32(s0["triangle_channel"]), [-1] * (n - 1) + [5])
    assert np.array_equal(i32(s1["triangle_surface"]), [1] * (n - 6) + [0] * 6) and "triangle_channel" not in s1
    assert s0["surface"] == 0 and s0["channel"] == 9
    assert g.channels == 6  # triangle_channel replaces the solid's channel 9 on every triangle
    with pytest.raises(ValueError, match="triangle_surface has 3 entries"):
        Solid(tube.mesh, glass, water, triangle_surface=[None] * 3)
    with pytest.raises(ValueError, match=r"triangle_channel\[0\] is -2"):
        Solid(tube.mesh, glass, water, triangle_channel=[-2] + [0] * (n - 1))


# ---- validation before sending ----

def test_bad_refractive_index():
    g, inside, _, _ = simple()
    inside.refractive_index = (np.array([200.0, 800.0]), np.array([1.2, 0.8]))
    with pytest.raises(ValueError, match=r"material 0 \('inside'\): refractive_index\[\d+\] is 0\.9\d* at"):
        g.to_message()
    inside.refractive_index = 1.0  # exactly 1 is fine
    g.to_message()


@pytest.mark.parametrize("prop,lo", [("absorption_length", 0.0), ("scattering_length", -1.0)])
def test_bad_lengths(prop, lo):
    g, inside, _, _ = simple()
    setattr(inside, prop, lo)
    with pytest.raises(ValueError, match=rf"'inside'\): {prop} \(mm\)\[0\] is {lo:g} at 200 nm"):
        g.to_message()


def test_surface_probabilities():
    g, _, _, black = simple()
    black.detect = lambda wl: np.where(wl > 500, 0.6, 0.0)
    black.absorb = 0.5
    with pytest.raises(ValueError, match=r"surface 0 \('black'\): detect \+ absorb .* is 1\.1 at 505 nm"):
        g.to_message()
    black.model = "wls"  # wls: absorb alone is the shifting probability, no sum rule
    g.to_message()
    black.model = "dielectric"
    with pytest.raises(ValueError, match="model is 'dielectric'"):
        g.to_message()
    black.model, black.detect, black.absorb = "default", 0.0, 1.5
    with pytest.raises(ValueError, match=r"'black'\): absorb\[0\] is 1\.5"):
        g.to_message()


def test_reemission_needs_a_spectrum():
    g, inside, _, black = simple()
    inside.reemission_prob = 0.2
    with pytest.raises(ValueError, match=r"'inside'\): reemission_prob > 0 needs a reemission_spectrum"):
        g.to_message()
    inside.reemission_spectrum = 0.0
    with pytest.raises(ValueError, match="reemission_spectrum: integrates to 0"):
        g.to_message()
    inside.reemission_spectrum = 1.0
    inside.reemission_tau = -1.0
    with pytest.raises(ValueError, match="reemission_tau"):
        g.to_message()


def test_property_forms():
    g = Geometry((300.0, 10.0, 5))
    assert np.array_equal(g.wavelengths, [300, 310, 320, 330, 340])
    table = np.array([[300.0, 1.0], [340.0, 2.0]])  # Chroma's (wavelength, value) rows
    forms = [1.5, [1, 2, 3, 4, 5], ([340.0, 300.0], [2.0, 1.0]), table, lambda wl: wl / 100]
    expected = [np.full(5, 1.5), [1, 2, 3, 4, 5], np.linspace(1, 2, 5), np.linspace(1, 2, 5), g.wavelengths / 100]
    for form, want in zip(forms, expected):
        assert np.allclose(g._table(form, "x", 0, 10), want)
    with pytest.raises(ValueError, match="x: \\(3,\\) values for a grid of 5"):
        g._table([1, 2, 3], "x", 0, 10)
    with pytest.raises(ValueError, match=r"x\[2\] is nan at 320 nm"):
        g._table([1, 2, np.nan, 4, 5], "x", 0, 10)
    m = Material("m")
    m.set("scattering_length", 7.0, wavelengths=[300.0, 340.0])
    assert m.scattering_length[1] == 7.0
    with pytest.raises(ValueError, match="no property 'colour'"):
        m.set("colour", 1.0)


def test_grid():
    assert Geometry().wavelength_grid == GRID
    assert np.array_equal(Geometry().wavelengths, WL)
    assert Geometry(np.linspace(300, 600, 31)).wavelength_grid == (300.0, 10.0, 31)
    with pytest.raises(ValueError, match="evenly spaced"):
        Geometry([300.0, 310.0, 330.0])
    with pytest.raises(ValueError, match="number of wavelengths"):
        Geometry((300.0, 1.0, 5000))
    with pytest.raises(ValueError, match="step"):
        Geometry((300.0, 0.0, 10))


def test_bad_rotation():
    g, inside, outside, _ = simple()
    s = Solid(make.box(1, 1, 1), inside, outside)
    with pytest.raises(ValueError, match=r"solid 1: rotation is not a proper rotation .*det = -1"):
        g.add_solid(s, rotation=np.diag([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"solid 1: rotation is not a proper rotation \(max \|R R\^T - I\| = 0\.0"):
        g.add_solid(s, rotation=[[1.0, 0.001, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="solid 1: rotation must be a finite 3x3"):
        g.add_solid(s, rotation=np.eye(2))
    with pytest.raises(ValueError, match="solid 1: displacement"):
        g.add_solid(s, displacement=[0, np.inf, 0])
    assert len(g.solids) == 1  # nothing was added
    assert g.add_solid(s, rotation=make.rotation_to([1, 1, 0]) + 1e-6) == 1  # within 1e-4


def test_names_and_limits(monkeypatch):
    g, inside, _, _ = simple()
    inside.name = "x" * 65
    with pytest.raises(ValueError, match="at most 64 UTF-8 bytes"):
        g.to_message()
    inside.name = "inside"
    with pytest.raises(ValueError, match="no solids"):
        Geometry().to_message()
    monkeypatch.setattr(geometry, "MAX_MATERIALS", 1)
    with pytest.raises(ValueError, match="2 materials"):
        g.to_message()
    monkeypatch.setattr(geometry, "MAX_MATERIALS", 65535)
    monkeypatch.setattr(geometry, "MAX_ELEMENTS", 40)
    with pytest.raises(ValueError, match="map entries and array elements"):
        g.to_message()
    monkeypatch.setattr(geometry, "MAX_ELEMENTS", 1 << 20)
    monkeypatch.setattr(geometry, "MAX_TRIANGLES", 11)
    with pytest.raises(ValueError, match="solid 0: the geometry would have 12 triangles"):
        g.to_message()


# ---- Detector ----

def test_detector_channels():
    cathode, body = Surface("cathode", detect=0.25, absorb=0.75), Surface("body", absorb=1.0)
    glass, water, black = Material("glass", 1.5, 1000.0), Material("water", 1.33), Material("black", 1.0, 1e-3)
    d = Detector()
    d.add_solid(Solid(make.sphere(1000.0, 2), water, black, body))
    tube = make.pmt(50.0, cathode, body, glass, water, segments=8, rings=3)
    dome = np.array([s is cathode for s in tube.triangle_surface])
    dirs = make.fibonacci_sphere(3)
    assert [d.add_pmt(tube, make.rotation_to(-u), 900.0 * u) for u in dirs] == [0, 1, 2]
    assert d.add_pmt(tube, channel_id=10) == 10 and d.add_pmt(tube) == 11
    assert d.add_pmt(tube, channel_id=4) == 4 and d.add_pmt(tube) == 12
    assert d.channels == 13
    with pytest.raises(ValueError, match="channel 4 is already"):
        d.add_pmt(tube, channel_id=4)
    with pytest.raises(ValueError, match="channel_id"):
        d.add_pmt(tube, channel_id=-1)
    assert tube.channel is None and tube.triangle_channel is None  # the caller's solid is untouched
    placed = d.solids[2]
    assert placed.mesh is tube.mesh and placed.triangle_surface is tube.triangle_surface
    assert np.array_equal(placed.triangle_channel, np.where(dome, 1, -1))
    # a PMT at u points its dome at the centre
    v = d.solids[1].mesh.vertices @ d.solid_rotations[1].T + d.solid_displacements[1]
    apex = v[np.argmax(tube.mesh.vertices[:, 2])]
    assert np.linalg.norm(apex) == pytest.approx(850.0)
    msg = d.to_message()
    assert len(msg["meshes"]) == 2 and len(msg["solids"]) == 8
    assert [s["name"] for s in msg["surfaces"]] == ["body", "cathode"]
    assert np.array_equal(i32(msg["solids"][3]["triangle_channel"]), np.where(dome, 2, -1))
    assert np.array_equal(i32(msg["solids"][3]["triangle_surface"]), np.where(dome, 1, 0))
    # a solid whose whole surface detects gets the channel on the solid
    assert d.add_pmt(Solid(make.box(1, 1, 1), glass, water, cathode)) == 13
    assert d.solids[-1].channel == 13 and d.channels == 14
    with pytest.raises(ValueError, match="detects"):
        d.add_pmt(Solid(make.box(1, 1, 1), glass, water, body))
    with pytest.raises(ValueError, match="detects"):
        d.add_pmt(make.pmt(50.0, body, body, glass, water))


# ---- load_mesh ----

def test_load_mesh_stl_round_trip(tmp_path):
    trimesh = pytest.importorskip("trimesh", reason="load_mesh needs the optional dependency trimesh")
    m = make.sphere(2.0, 2)
    path = tmp_path / "sphere.stl"
    trimesh.Trimesh(m.vertices, m.triangles, process=False).export(path)
    loaded = geometry.load_mesh(path, scale=10.0)
    assert len(loaded) == len(m) and len(loaded.vertices) == len(m.vertices)  # duplicates merged
    assert loaded.is_closed()
    assert loaded.volume() == pytest.approx(1000.0 * m.volume(), rel=1e-5)  # STL stores float32
    assert np.abs(np.linalg.norm(loaded.vertices, axis=1) - 20.0).max() < 1e-4
