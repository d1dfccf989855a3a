"""The GPU runtime from Python, through cffi over our C API (libchroma2-cuda.so):
the CPU engine and the GPU on the same events and seeds. The declarations
come from the C headers through the preprocessor; numpy reads the results.
Skips, saying why, where no CUDA device is usable (CI)."""
import os
import re
import subprocess

import numpy as np
import pytest

cffi = pytest.importorskip("cffi")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.environ.get("C2T_CUDA_LIB", os.path.join(ROOT, "build", "lib", "libchroma2-cuda.so"))


def _ffi():
    here = os.path.join(ROOT, "tests", "gpu")
    cpp = [os.environ.get("CC", "cc"), "-E", "-nostdinc", "-I", os.path.join(here, "stub"),
           "-I", os.path.join(ROOT, "kernels", "include"), os.path.join(here, "api.h")]
    decls = subprocess.run(cpp[:2] + ["-P"] + cpp[2:], check=True, capture_output=True, text=True).stdout
    # the integer #defines (flag bits, limits) as cffi constants
    macros = subprocess.run(cpp[:2] + ["-dM"] + cpp[2:], check=True, capture_output=True, text=True).stdout
    consts = [f"#define {m[1]} {m[2]}" for m in re.finditer(r"^#define (C2_\w+) \(?(0x[0-9a-fA-F]+|\d+)u?\)?$",
                                                             macros, re.M)]
    ffi = cffi.FFI()
    ffi.cdef(decls + "\n" + "\n".join(consts))
    if not os.path.exists(LIB):
        pytest.skip(f"{LIB} not built (make builds it where nvcc is found)", allow_module_level=True)
    return ffi, ffi.dlopen(LIB)


ffi, lib = _ffi()
ALL = lib.C2_RETURN_HITS | lib.C2_RETURN_PHOTONS | lib.C2_RETURN_CHANNELS


def _photon_dtype():
    """numpy's view of c2_photon, checked field by field against the C layout."""
    dt = np.dtype([("pos", "<f4", 3), ("time", "<f4"), ("dir", "<f4", 3), ("wavelength", "<f4"), ("pol", "<f4", 3),
                   ("weight", "<f4"), ("flags", "<u4"), ("last_hit_triangle", "<i4"), ("channel", "<i4"),
                   ("id", "<u4"), ("event", "<u4"), ("draws", "<u4"), ("steps", "<u4"), ("reserved", "<u4")])
    assert dt.itemsize == ffi.sizeof("c2_photon")
    for name in dt.names:
        assert dt.fields[name][1] == ffi.offsetof("c2_photon", name), name
    return dt


PHOTON = _photon_dtype()


@pytest.fixture(scope="module")
def gpu():
    err = ffi.new("c2_error *")
    if lib.c2c_device_count(err) <= 0:
        pytest.skip(ffi.string(err.msg).decode())
    p = ffi.new("c2_detector_params *")
    lib.c2_detector_params_default(p)
    p.npmts = 2000
    g = lib.c2_detector_build(p, ffi.NULL, err)
    assert g != ffi.NULL, ffi.string(err.msg)
    dg = lib.c2c_geometry_upload(g, err)
    assert dg != ffi.NULL, ffi.string(err.msg)
    rt = lib.c2c_runtime_new(ffi.NULL, err)
    assert rt != ffi.NULL, ffi.string(err.msg)
    yield g, dg, rt, p.radius
    lib.c2c_runtime_free(rt)
    lib.c2c_geometry_free(dg)
    lib.c2_geometry_free(g)


def _photons(n, radius, rng):
    """n isotropic 420 nm photons uniform in a ball, polarisation left to the engine."""
    ph = np.zeros(n, PHOTON)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    x = rng.normal(size=(n, 3))
    x *= (radius * rng.random(n) ** (1 / 3) / np.linalg.norm(x, axis=1))[:, None]
    ph["pos"], ph["dir"], ph["wavelength"], ph["weight"] = x, d, 420.0, 1.0
    return ph


def _event(ph, src, seed, event_id):
    ev = ffi.new("c2_event *")
    ev.id, ev.seed, ev.want = event_id, seed, ALL
    if ph is not None:
        ev.photons, ev.nphotons = ffi.cast("c2_photon *", ph.ctypes.data), len(ph)
    if src is not None:
        ev.sources, ev.nsources = src, 1
    return ev


def _run(run, ev):
    res = ffi.new("c2_event_result *")
    err = ffi.new("c2_error *")
    assert run(ev, res, err) == 0, ffi.string(err.msg)
    ends = np.frombuffer(ffi.buffer(res.photons, res.nphotons * PHOTON.itemsize), PHOTON).copy()
    hits = [(res.hits[i].photon_id, res.hits[i].channel) for i in range(res.nhits)]
    out = ends, hits, res.steps
    lib.c2_event_result_free(res)
    return out


def _cpu(g):
    return lambda ev, res, err: lib.c2_engine_run(g, ev, 1, res, 0, err)


def _gpu(dg, rt, stats=ffi.NULL):
    return lambda ev, res, err: lib.c2c_runtime_run(rt, dg, ev, 1, res, stats, err)


def test_same_histories_as_the_cpu_engine(gpu):
    g, dg, rt, radius = gpu
    ph = _photons(200_000, 0.6 * radius, np.random.default_rng(7))
    src = ffi.new("c2_source *", {"pos": [0, 0, 0], "dir": [0, 0, 1], "cos_half_angle": -1.0, "wavelength": 400.0,
                                  "spectrum": -1, "nphotons": 100_000})
    ev = _event(ph, src, seed=11, event_id=3)
    a_ends, a_hits, a_steps = _run(_cpu(g), ev)
    b_ends, b_hits, b_steps = _run(_gpu(dg, rt), ev)
    assert len(a_ends) == len(b_ends) == 300_000
    assert np.array_equal(b_ends["id"], np.arange(300_000))
    same = (a_ends["flags"] == b_ends["flags"]) & (a_ends["channel"] == b_ends["channel"])
    close = same & (np.abs(a_ends["time"] - b_ends["time"]) <= 1e-3 + 1e-4 * a_ends["time"])
    print(f"same history {same.mean():.5%}, also in time {close.mean():.5%}; hits CPU {len(a_hits)} GPU {len(b_hits)}")
    assert close.mean() >= 0.999
    common = len(set(a_hits) & set(b_hits))
    assert common >= 0.999 * len(a_hits) and len(b_hits) <= len(a_hits) * 1.001 + 1
    assert abs(int(a_steps) - int(b_steps)) <= 0.001 * a_steps + 2
    # hits in photon-id order, each the photon's end state
    ids = np.array([h[0] for h in b_hits])
    assert np.all(np.diff(ids) > 0)
    assert np.all(b_ends["flags"][ids] & lib.C2_SURFACE_DETECT)


def test_direct_light_arrives_at_n_r_over_c(gpu):
    """From the centre the first light reaches the photocathodes after
    n r / c: the earliest hit time against that figure (analytic)."""
    g, dg, rt, radius = gpu
    src = ffi.new("c2_source *", {"pos": [0, 0, 0], "dir": [0, 0, 1], "cos_half_angle": -1.0, "wavelength": 400.0,
                                  "spectrum": -1, "nphotons": 200_000})
    ends, hits, _ = _run(_gpu(dg, rt), _event(None, src, seed=5, event_id=1))
    det = (ends["flags"] & lib.C2_SURFACE_DETECT) != 0
    direct = ends["flags"] == lib.C2_SURFACE_DETECT  # detected, nothing else on the way
    n_water = 1.325 + 2880.0 / 400.0**2  # the built-in detector's water (kernels/geometry/detector.c)
    t = ends["time"][direct]
    expect = n_water * np.linalg.norm(ends["pos"][direct], axis=1) / 299.792458
    assert det.sum() == len(hits) > 1000 and direct.sum() > 1000
    np.testing.assert_allclose(t, expect, rtol=1e-4)


def test_windows_do_not_change_results(gpu):
    """A pool of small windows (the event streams through it) gives the same bytes."""
    g, dg, rt, radius = gpu
    params = ffi.new("c2c_runtime_params *", {"window": 4099})
    err = ffi.new("c2_error *")
    small = lib.c2c_runtime_new(params, err)
    assert small != ffi.NULL, ffi.string(err.msg)
    src = ffi.new("c2_source *", {"pos": [100, 200, 300], "dir": [0, 0, 1], "cos_half_angle": 0.5,
                                  "wavelength": 450.0, "spectrum": -1, "nphotons": 250_000})
    ev = _event(None, src, seed=9, event_id=2)
    stats = ffi.new("c2c_run_stats *")
    a = _run(_gpu(dg, rt), ev)
    b = _run(_gpu(dg, small, stats), ev)
    lib.c2c_runtime_free(small)
    assert stats.windows == (250_000 + 4098) // 4099
    assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1] and a[2] == b[2]
