/*
 * chroma2/engine.h: the one public header of libchroma2-engine.
 *
 * It holds the plain data types that cross every boundary (photons, sources,
 * hits), the geometry builder, the built-in detector and the CPU engine. The
 * physics itself lives in kernels/physics/ as pure host/device functions that
 * both this library and the CUDA kernels compile; those headers include this
 * one for the types and nothing else.
 *
 * Units everywhere: millimetres, nanoseconds, nanometres. Directions and
 * polarisations are unit vectors. Every struct here is plain old data with a
 * fixed layout, so it can be copied to a GPU or onto the wire as it is.
 *
 * Errors: functions return 0 (C2_OK) or a negative C2_E* code, and fill the
 * optional c2_error with the same code and a message naming the bad value.
 * Nothing here aborts on bad input.
 */
#ifndef CHROMA2_ENGINE_H
#define CHROMA2_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors: one table generates the codes, their names and strings ---- */
#define C2_ERRNO_MAP(X)                                             \
    X(OK, 0, "success")                                             \
    X(EINVAL, -1, "invalid argument")                               \
    X(ENOMEM, -2, "out of memory")                                  \
    X(ERANGE, -3, "value out of range")                             \
    X(ESTATE, -4, "object in the wrong state for this call")        \
    X(ELIMIT, -5, "a size limit was exceeded")                      \
    X(EIO, -6, "input/output error")

typedef enum {
#define C2_ERR_ENUM(name, val, str) C2_##name = (val),
    C2_ERRNO_MAP(C2_ERR_ENUM)
#undef C2_ERR_ENUM
} c2_errno;

/* A code and a human message such as "material 2: absorption_length[7] is
 * -1 (must be > 0)". Owned by the caller, usually on the stack. */
typedef struct c2_error {
    int code;
    char msg[256];
} c2_error;

const char *c2_strerror(int code); /* "invalid argument"; never NULL */
const char *c2_errname(int code);  /* "C2_EINVAL"; never NULL */

/* ---- photon history flags: Chroma's bit values, which clients rely on ----
 * Plain defines: bit 31 does not fit a C enum. C2_FLAGS_MAP(X) lists every
 * flag once, for tables of names (X(name) has the value C2_##name). */
#define C2_NO_HIT 0x1u
#define C2_BULK_ABSORB 0x2u
#define C2_SURFACE_DETECT 0x4u
#define C2_SURFACE_ABSORB 0x8u
#define C2_RAYLEIGH_SCATTER 0x10u
#define C2_REFLECT_DIFFUSE 0x20u
#define C2_REFLECT_SPECULAR 0x40u
#define C2_SURFACE_REEMIT 0x80u
#define C2_SURFACE_TRANSMIT 0x100u
#define C2_BULK_REEMIT 0x200u
#define C2_CHERENKOV 0x400u
#define C2_SCINTILLATION 0x800u
#define C2_MAX_STEPS 0x40000000u
#define C2_NAN_ABORT 0x80000000u
#define C2_FLAGS_MAP(X)                                                                                               \
    X(NO_HIT) X(BULK_ABSORB) X(SURFACE_DETECT) X(SURFACE_ABSORB) X(RAYLEIGH_SCATTER) X(REFLECT_DIFFUSE)              \
    X(REFLECT_SPECULAR) X(SURFACE_REEMIT) X(SURFACE_TRANSMIT) X(BULK_REEMIT) X(CHERENKOV) X(SCINTILLATION)          \
    X(MAX_STEPS) X(NAN_ABORT)

/* "SURFACE_DETECT" for one flag bit; NULL for a value that is not exactly one
 * known flag. */
const char *c2_flag_name(uint32_t flag);

/* A photon whose flags hold any of these is finished. MAX_STEPS is chroma2's
 * own: Chroma left such photons unflagged. */
#define C2_FINISHED_MASK \
    (C2_NO_HIT | C2_BULK_ABSORB | C2_SURFACE_DETECT | C2_SURFACE_ABSORB | C2_MAX_STEPS | C2_NAN_ABORT)

/* ---- photons ---- */

/* One photon, 80 bytes. On input to the engine only the kinematic fields
 * (pos, time, dir, wavelength, pol, weight) are read; a zero pol asks for a
 * random polarisation perpendicular to dir. The engine fills the rest. */
typedef struct c2_photon {
    float pos[3];
    float time;
    float dir[3];
    float wavelength;
    float pol[3];
    float weight;
    uint32_t flags;            /* C2_* history bits */
    int32_t last_hit_triangle; /* -1 when none: a ray never re-hits it */
    int32_t channel;           /* channel of the detecting surface, else -1 */
    uint32_t id;               /* photon id within its event */
    uint32_t event;            /* index of its event in the batch */
    uint32_t draws;            /* random numbers consumed so far */
    uint32_t steps;            /* propagation steps taken */
    uint32_t reserved;
} c2_photon;

/* A point source ("genstep"): a small record that expands, where the photons
 * run, into nphotons photons. Photon k of the source is a pure function of
 * (seed, event id, photon id), so the expansion does not depend on where or
 * in which batch it happens. */
typedef struct c2_source {
    float pos[3];
    float time;
    float dir[3];         /* cone axis (unit); ignored when isotropic */
    float cos_half_angle; /* cone: directions within acos(this) of dir; <= -1: isotropic */
    float wavelength;     /* used when spectrum < 0 */
    int32_t spectrum;     /* index into the event's spectra, or -1 */
    uint32_t nphotons;
    uint32_t reserved;
} c2_source;

typedef struct c2_hit {
    uint32_t photon_id;
    int32_t channel;
    float time;
    float wavelength;
    float pos[3];
    uint32_t flags;
} c2_hit;

typedef struct c2_channel_summary {
    int32_t channel;
    uint32_t count;   /* detected photons */
    float first_time; /* earliest hit time */
    float charge;     /* summed photon weight */
} c2_channel_summary;

/* ---- geometry ---- */

/* A geometry: one wavelength grid, materials and surfaces tabulated on it,
 * meshes placed as solids, flattened into one triangle mesh with a BVH by
 * c2_geometry_build. Not thread-safe while being built; after a successful
 * build it is immutable and any number of threads may read it. */
typedef struct c2_geometry c2_geometry;

/* Material tables, each nwl values on the geometry's grid; the arrays are
 * copied. reemission_cdf may be NULL when reemission_prob is all zero; else
 * it is a nondecreasing table ending at 1 (it is normalised). */
typedef struct c2_material_desc {
    const char *name;
    const float *refractive_index;  /* >= 1 */
    const float *absorption_length; /* mm, > 0 (use a large value for none) */
    const float *scattering_length; /* mm, > 0, Rayleigh */
    const float *reemission_prob;   /* [0,1], of absorbed photons; NULL = 0 */
    const float *reemission_cdf;    /* CDF of reemitted wavelength */
    float reemission_tau;           /* ns, exponential delay; 0 = prompt */
} c2_material_desc;

typedef enum {
    C2_SURFACE_DEFAULT = 0, /* detect / absorb / diffuse / specular, rest Fresnel */
    C2_SURFACE_WLS = 1      /* absorb (then reemit or not), rest Fresnel */
} c2_surface_model;

/* Surface tables, each nwl values; NULL means all zero. DEFAULT: per
 * wavelength detect + absorb + reflect_diffuse + reflect_specular <= 1, the
 * rest goes to Fresnel reflection/refraction. WLS: absorb is the shifting
 * probability, reemission_prob the fraction of those reemitted with a
 * wavelength from reemission_cdf; the rest goes to Fresnel. */
typedef struct c2_surface_desc {
    const char *name;
    c2_surface_model model;
    const float *detect;
    const float *absorb;
    const float *reflect_diffuse;
    const float *reflect_specular;
    const float *reemission_prob;
    const float *reemission_cdf;
    float reemission_tau;
} c2_surface_desc;

/* Limits that keep a geometry addressable by the 16- and 32-bit indices the
 * kernels use. */
#define C2_MAX_MATERIALS 65535u
#define C2_MAX_SURFACES 65535u
#define C2_MAX_TRIANGLES 0x7fffffffu
#define C2_MAX_WAVELENGTHS 4096u
#define C2_NO_SURFACE (-1)
#define C2_NO_CHANNEL (-1)

/* Grid: nwl points wl_min, wl_min + wl_step, ... (nm). Returns NULL and fills
 * err on bad arguments or no memory. Free with c2_geometry_free. */
c2_geometry *c2_geometry_new(float wl_min, float wl_step, uint32_t nwl, c2_error *err);
void c2_geometry_free(c2_geometry *g); /* NULL is fine */

int c2_geometry_add_material(c2_geometry *g, const c2_material_desc *m, uint32_t *id, c2_error *err);
int c2_geometry_add_surface(c2_geometry *g, const c2_surface_desc *s, uint32_t *id, c2_error *err);

/* A mesh: nverts xyz triples and ntris index triples, copied. A triangle's
 * outward normal is (v1 - v0) x (v2 - v0): "inner" is the side it points
 * away from. */
int c2_geometry_add_mesh(c2_geometry *g, const float *verts, uint32_t nverts, const uint32_t *tris,
                         uint32_t ntris, uint32_t *id, c2_error *err);

/* Places mesh as a solid: vertex v goes to rot * v + shift (rot row-major,
 * NULL = identity; it must be a rotation). surface may be C2_NO_SURFACE,
 * channel C2_NO_CHANNEL. */
typedef struct c2_solid_desc {
    uint32_t mesh;
    uint32_t inner_material;
    uint32_t outer_material;
    int32_t surface;
    int32_t channel;
    const float *rot;   /* 9 floats or NULL */
    const float *shift; /* 3 floats or NULL */
} c2_solid_desc;

int c2_geometry_add_solid(c2_geometry *g, const c2_solid_desc *s, uint32_t *id, c2_error *err);

/* Per-triangle surface override for a solid already added: triangles
 * [first, first + count) of that solid's mesh get this surface and channel.
 * Lets one closed solid carry a photocathode on part of it. */
int c2_geometry_set_triangle_surface(c2_geometry *g, uint32_t solid, uint32_t first, uint32_t count,
                                     int32_t surface, int32_t channel, c2_error *err);

typedef struct c2_build_stats {
    uint64_t triangles;
    uint64_t nodes;
    uint32_t depth;      /* deepest leaf */
    uint32_t max_leaf;   /* most triangles in one leaf */
    double sah_cost;     /* expected ray cost by the surface area heuristic (lower is better) */
    uint64_t bytes;      /* flattened mesh + BVH */
    double seconds;      /* wall time of flatten + BVH build */
    uint32_t channels;   /* 1 + largest channel id, 0 if none */
} c2_build_stats;

/* Flattens the solids and builds the BVH. After success the geometry is
 * frozen: adding more fails with C2_ESTATE. stats may be NULL. */
int c2_geometry_build(c2_geometry *g, c2_build_stats *stats, c2_error *err);

/* Read access to a built geometry (NULL/0 before the build). Triangle ids
 * in photons and hits index the flattened, BVH-ordered triangles. */
uint32_t c2_geometry_nwl(const c2_geometry *g);
float c2_geometry_wl_min(const c2_geometry *g);
float c2_geometry_wl_step(const c2_geometry *g);
uint32_t c2_geometry_ntriangles(const c2_geometry *g);
uint32_t c2_geometry_nchannels(const c2_geometry *g);
/* The three vertices (9 floats) of flattened triangle t, 0 if t is valid. */
int c2_geometry_triangle(const c2_geometry *g, uint32_t t, float out[9]);

/* Streams the geometry's content as it was added (grid, materials,
 * surfaces, meshes, solids, per-triangle overrides) as bytes in a fixed
 * order and layout to write(data, len, ctx); the daemon hashes it into the
 * geometry's digest. Two geometries with equal streams are the same
 * geometry. */
void c2_geometry_content(const c2_geometry *g, void (*write)(const void *data, size_t len, void *ctx), void *ctx);

/* ---- the built-in parametric detector ---- */
typedef struct c2_detector_params {
    float radius;            /* mm: water sphere, PMTs and black shell at this radius */
    uint32_t npmts;          /* on a Fibonacci lattice */
    float pmt_radius;        /* mm: hemispherical photocathode */
    uint32_t pmt_segments;   /* triangles per PMT = 2 * segments * rings */
    uint32_t pmt_rings;
    float detect_efficiency; /* photocathode; the rest is absorbed */
    float absorption_length; /* mm at 400 nm (flat in wavelength) */
    float scattering_length; /* mm at 400 nm, scales as lambda^4 */
    uint32_t shell_subdivisions; /* icosphere level of the black shell */
} c2_detector_params;

void c2_detector_params_default(c2_detector_params *p);
/* Builds (and c2_geometry_build's) the detector; channel k is PMT k. */
c2_geometry *c2_detector_build(const c2_detector_params *p, c2_build_stats *stats, c2_error *err);

/* ---- the CPU engine ---- */
enum {
    C2_RETURN_HITS = 1u << 0,
    C2_RETURN_PHOTONS = 1u << 1, /* end state of every photon, by photon id */
    C2_RETURN_CHANNELS = 1u << 2
};

#define C2_DEFAULT_MAX_STEPS 1000u

/* Explicit photons as columns (structure of arrays, as numpy and the wire
 * hold them) instead of c2_photon records: n rows each of packed host-order
 * 4-byte floats, at any alignment (the daemon points these into a request
 * message). pos, dir and wavelength are required; pol NULL: random
 * polarisation, time NULL: 0, weight NULL: 1. */
typedef struct c2_photon_columns {
    const void *pos;        /* n x 3 */
    const void *dir;        /* n x 3 */
    const void *wavelength; /* n */
    const void *pol;        /* n x 3 or NULL */
    const void *time;       /* n or NULL */
    const void *weight;     /* n or NULL */
} c2_photon_columns;

/* One event. Photon ids: explicit photon i has id i, then the sources'
 * photons in order. The explicit photons are records (photons) or columns
 * (columns.pos set, photons NULL). The engine reads the arrays only during
 * c2_engine_run. */
typedef struct c2_event {
    uint64_t id;   /* with seed, keys the random numbers */
    uint64_t seed;
    uint32_t max_steps; /* 0: C2_DEFAULT_MAX_STEPS */
    uint32_t want;      /* C2_RETURN_* bits */
    const c2_photon *photons;
    uint32_t nphotons;
    c2_photon_columns columns;
    const c2_source *sources;
    uint32_t nsources;
    const float *spectra; /* nspectra CDFs of nwl values on the geometry's grid */
    uint32_t nspectra;
    /* NULL, or a flag another thread may set (atomically) while the event
     * runs: from then on its remaining photons are skipped and its result
     * is incomplete. For a caller that gave up on it (cancelled, past its
     * deadline); the other events of the batch are not affected. */
    const int *stop;
} c2_event;

/* Results of one event; arrays are malloc'd by the engine and owned by the
 * caller, released with c2_event_result_free. Hits are sorted by photon id,
 * channels by channel; a photon is detected at most once. */
typedef struct c2_event_result {
    c2_hit *hits;
    uint32_t nhits;
    c2_photon *photons; /* nphotons end states when C2_RETURN_PHOTONS */
    uint32_t nphotons;
    c2_channel_summary *channels;
    uint32_t nchannels;
    uint32_t ntotal;   /* photons propagated (explicit and from sources) */
    uint64_t steps;    /* propagation steps of all its photons */
    uint32_t nreemit;  /* reemissions (spawned photons) */
    uint32_t nmaxsteps; /* photons stopped by the max-steps guard */
    uint32_t nnan;      /* photons stopped by the NaN guard */
} c2_event_result;

void c2_event_result_free(c2_event_result *r); /* frees the arrays, zeroes r */

/* Checks one event against a geometry without running it: finite values,
 * unit directions, polarisations perpendicular to them, wavelengths on the
 * grid, spectra, photon counts. c2_engine_run does the same first. */
int c2_event_validate(const c2_geometry *g, const c2_event *ev, c2_error *err);

/* Propagates nevents events to completion on nthreads threads (0: every CPU the process may use)
 * and fills results[0..nevents). Results are the same for any thread count
 * and any split of the events into batches. On error no result is filled.
 * Blocks the calling thread; the geometry must be built. */
int c2_engine_run(const c2_geometry *g, const c2_event *events, uint32_t nevents,
                  c2_event_result *results, uint32_t nthreads, c2_error *err);

#ifdef __cplusplus
}
#endif
#endif
