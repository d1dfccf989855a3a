"""cffi (API mode) build of chroma2._lib: libchroma2-client and the engine
calls the Python client uses, compiled against the C headers so that every
struct layout here is checked by the C compiler.

Where the headers and the static library are found, in order: the
environment (CHROMA2_INCLUDE, CHROMA2_LIBDIR, CHROMA2_BINDIR), the source
tree this file sits in after `make` (../../build), pkg-config chroma2-client.
The extension links libchroma2-client statically, so it needs only NNG and
msgpack-c at run time.
"""
import json
import os
import shlex
import subprocess

from cffi import FFI

CDEF = r"""
typedef struct c2_error { int code; char msg[256]; } c2_error;
const char *c2_strerror(int code);
const char *c2_errname(int code);
const char *c2_flag_name(uint32_t flag);

#define C2_NO_HIT ...
#define C2_BULK_ABSORB ...
#define C2_SURFACE_DETECT ...
#define C2_SURFACE_ABSORB ...
#define C2_RAYLEIGH_SCATTER ...
#define C2_REFLECT_DIFFUSE ...
#define C2_REFLECT_SPECULAR ...
#define C2_SURFACE_REEMIT ...
#define C2_SURFACE_TRANSMIT ...
#define C2_BULK_REEMIT ...
#define C2_CHERENKOV ...
#define C2_SCINTILLATION ...
#define C2_MAX_STEPS ...
#define C2_NAN_ABORT ...
#define C2_DEFAULT_MAX_STEPS ...
#define C2_ETIMEDOUT ...
#define C2_DEADLINE_GRACE_MS ...

enum { C2_OK, C2_EINVAL, C2_ENOMEM, C2_ERANGE, C2_ESTATE, C2_ELIMIT, C2_EIO, ... };
enum { C2_RETURN_HITS, C2_RETURN_PHOTONS, C2_RETURN_CHANNELS, ... };
enum { C2_REMOTE_MALFORMED, C2_REMOTE_BAD_REQUEST, C2_REMOTE_VERSION, C2_REMOTE_UNKNOWN_TYPE,
       C2_REMOTE_TOO_LARGE, C2_REMOTE_BUSY, C2_REMOTE_NOT_FOUND, C2_REMOTE_DIGEST_MISMATCH,
       C2_REMOTE_DEADLINE, C2_REMOTE_CANCELLED, C2_REMOTE_SHUTTING_DOWN, C2_REMOTE_BACKEND,
       C2_REMOTE_INTERNAL, C2_REMOTE_EXISTS, ... };

typedef struct c2_photon {
    float pos[3]; float time; float dir[3]; float wavelength; float pol[3]; float weight;
    uint32_t flags; int32_t last_hit_triangle; int32_t channel; uint32_t id; uint32_t event;
    uint32_t draws; uint32_t steps; uint32_t reserved;
} c2_photon;
typedef struct c2_source {
    float pos[3]; float time; float dir[3]; float cos_half_angle; float wavelength;
    int32_t spectrum; uint32_t nphotons; uint32_t reserved;
} c2_source;
typedef struct c2_hit {
    uint32_t photon_id; int32_t channel; float time; float wavelength; float pos[3]; uint32_t flags;
} c2_hit;
typedef struct c2_channel_summary { int32_t channel; uint32_t count; float first_time; float charge; } c2_channel_summary;

typedef struct c2_photon_columns {
    const void *pos; const void *dir; const void *wavelength;
    const void *pol; const void *time; const void *weight;
} c2_photon_columns;
typedef struct c2_event {
    uint64_t id; uint64_t seed; uint32_t max_steps; uint32_t want;
    const c2_photon *photons; uint32_t nphotons; c2_photon_columns columns;
    const c2_source *sources; uint32_t nsources;
    const float *spectra; uint32_t nspectra;
    const int *stop;
} c2_event;
typedef struct c2_event_result {
    c2_hit *hits; uint32_t nhits;
    c2_photon *photons; uint32_t nphotons;
    c2_channel_summary *channels; uint32_t nchannels;
    uint32_t ntotal; uint64_t steps; uint32_t nreemit; uint32_t nmaxsteps; uint32_t nnan;
} c2_event_result;
void c2_event_result_free(c2_event_result *r);

/* the in-process CPU engine on the built-in detector */
typedef struct c2_geometry c2_geometry;
typedef struct c2_detector_params {
    float radius; uint32_t npmts; float pmt_radius; uint32_t pmt_segments; uint32_t pmt_rings;
    float detect_efficiency; float absorption_length; float scattering_length; uint32_t shell_subdivisions;
} c2_detector_params;
typedef struct c2_build_stats { uint64_t triangles; uint64_t nodes; uint32_t depth; uint32_t max_leaf;
    double sah_cost; uint64_t bytes; double seconds; uint32_t channels; } c2_build_stats;
void c2_detector_params_default(c2_detector_params *p);
c2_geometry *c2_detector_build(const c2_detector_params *p, c2_build_stats *stats, c2_error *err);
void c2_geometry_free(c2_geometry *g);
uint32_t c2_geometry_nwl(const c2_geometry *g);
float c2_geometry_wl_min(const c2_geometry *g);
float c2_geometry_wl_step(const c2_geometry *g);
int c2_engine_run(const c2_geometry *g, const c2_event *events, uint32_t nevents,
                  c2_event_result *results, uint32_t nthreads, c2_error *err);

/* the client */
typedef struct c2_client c2_client;
typedef struct c2_future c2_future;
typedef struct c2_reply c2_reply;
typedef struct c2_submit_opts {
    const char *geometry; const char *digest; uint32_t spectra_nwl; uint32_t deadline_ms;
    int32_t priority;
} c2_submit_opts;
int c2_client_open(const char *url, c2_client **out, c2_error *err);
void c2_client_close(c2_client *c);
int c2_client_call(c2_client *c, const char *type, const void *body, size_t body_len, uint32_t nbody_fields,
                   uint32_t timeout_ms, c2_reply **reply, c2_error *err);
const void *c2_reply_data(const c2_reply *r, size_t *len);
void c2_reply_free(c2_reply *r);
int c2_client_submit(c2_client *c, const c2_event *ev, const c2_submit_opts *opts, c2_future **out,
                     c2_error *err);
int c2_client_submit_many(c2_client *c, const c2_event *evs, uint32_t n, const c2_submit_opts *opts,
                          c2_future **out, c2_error *err);
int c2_future_wait(c2_future *f, uint32_t timeout_ms);
int c2_future_poll(c2_future *f);
int c2_future_result(c2_future *f, const c2_event_result **result, c2_error *err);
uint64_t c2_future_ticket(const c2_future *f);
void c2_future_timing(const c2_future *f, double *queued_ms, double *run_ms);
void c2_future_on_done(c2_future *f, void (*cb)(c2_future *f, void *arg), void *arg);
int c2_future_cancel(c2_future *f, c2_error *err);
void c2_future_free(c2_future *f);

extern "Python" void c2py_done(c2_future *f, void *arg);

/* the C client's default URL; where this build found chroma2d ("" when unknown) */
static const char c2py_default_url[];
static const char c2py_bindir[];
"""


def _locate():
    """(include dirs, static library, extra libs, bindir) of libchroma2-client."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    inc = os.environ.get("CHROMA2_INCLUDE")
    libdir = os.environ.get("CHROMA2_LIBDIR")
    bindir = os.environ.get("CHROMA2_BINDIR", "")
    if not (inc and libdir):
        if os.path.exists(os.path.join(root, "build", "lib", "libchroma2-client.a")):
            inc = inc or os.pathsep.join([os.path.join(root, "client", "include"),
                                          os.path.join(root, "kernels", "include")])
            libdir = libdir or os.path.join(root, "build", "lib")
            bindir = bindir or os.path.join(root, "build", "bin")
        else:
            try:
                flags = subprocess.run(["pkg-config", "--cflags", "--libs-only-L", "chroma2-client"],
                                       check=True, capture_output=True, text=True).stdout
            except (OSError, subprocess.CalledProcessError) as e:
                raise RuntimeError("libchroma2-client not found: run `make` in the chroma2 source tree, "
                                   "install it (make install), or set CHROMA2_INCLUDE and CHROMA2_LIBDIR") from e
            toks = shlex.split(flags)
            inc = inc or os.pathsep.join(t[2:] for t in toks if t.startswith("-I")) or "/usr/include"
            libdir = libdir or next((t[2:] for t in toks if t.startswith("-L")), "/usr/lib")
            bindir = bindir or os.path.normpath(os.path.join(libdir, "..", "bin"))
    lib = os.path.join(libdir, "libchroma2-client.a")
    if not os.path.exists(lib):
        raise RuntimeError(f"{lib} not found: build chroma2 first (make)")
    return inc.split(os.pathsep), lib, bindir


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
_inc, _lib, _bindir = _locate()
ffibuilder.set_source(
    "chroma2._lib",
    '#include "chroma2/client.h"\n'
    "static const char c2py_default_url[] = C2_DEFAULT_URL;\n"
    f"static const char c2py_bindir[] = {json.dumps(_bindir)};\n",
    include_dirs=_inc,
    extra_objects=[_lib],
    libraries=["msgpackc", "m"],
    extra_compile_args=["-std=c11"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
