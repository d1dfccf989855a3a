/*
 * util.h: small geometries and photon sets for tests and benchmarks. All
 * use the grid 200..800 nm in 5 nm steps (121 points); constant tables are
 * enough for analytic checks.
 */
#ifndef C2T_UTIL_H
#define C2T_UTIL_H

#include "chroma2/engine.h"

#define C2T_NWL 121
#define C2T_WL_MIN 200.0f
#define C2T_WL_STEP 5.0f

/* A geometry on the test grid; aborts the test on failure. */
c2_geometry *c2t_geometry(void);
/* A material with constant index, absorption and scattering lengths (mm). */
uint32_t c2t_material(c2_geometry *g, float rindex, float abslen, float scatlen);
/* A default-model surface with constant probabilities. */
uint32_t c2t_surface(c2_geometry *g, float detect, float absorb, float diffuse, float specular);
/* Adds an axis-aligned box solid [-h, h]^3 (mm). */
uint32_t c2t_box(c2_geometry *g, float h, uint32_t inner, uint32_t outer, int32_t surface, int32_t channel);
void c2t_build(c2_geometry *g);

/* C2T_SMALL=1 (for compute-sanitizer, which slows kernels a hundredfold)
 * caps the GPU tests' sizes: n, at most 20,000 then. */
uint32_t c2t_cap(uint32_t n);

/* n photons at pos along dir, wavelength wl, random polarisation. */
c2_photon *c2t_beam(uint32_t n, const float pos[3], const float dir[3], float wl);
/* n photons uniform in the ball of radius r at the origin, isotropic,
 * 400 nm, polarisation left to the engine: the benchmarks' workload. */
c2_photon *c2t_ball_photons(uint32_t n, float radius);
/* One event over photons and/or sources; other fields zero. */
c2_event c2t_event(uint64_t id, uint64_t seed, const c2_photon *ph, uint32_t nph, const c2_source *src,
                   uint32_t nsrc, uint32_t want);
/* Runs one event on nthreads; aborts the test on error. */
c2_event_result c2t_run(const c2_geometry *g, const c2_event *ev, uint32_t nthreads);

/* A 1 m box of scintillator (1 mm absorption, reemits everything below
 * 350 nm into a triangular spectrum on 400..600 nm whose CDF goes to cdf,
 * delay tau) in black. */
c2_geometry *c2t_scintillator_box(float tau, float cdf[C2T_NWL]);
/* A 1 m box of vacuum-like material in black, its wall a WLS surface that
 * shifts half of the light below 350 nm into 400..500 nm (flat). */
c2_geometry *c2t_wls_box(void);

/* The built-in detector, smaller (600 PMTs) and with a 4 m scattering
 * length, so histories branch a lot. */
c2_geometry *c2t_scattering_detector(void);

/* Three events mixing explicit photons (some polarised) and sources,
 * including an empty source; free ph when done. */
typedef struct c2t_fixture {
    c2_photon *ph;
    c2_source src[4];
    c2_event ev[3];
} c2t_fixture;
void c2t_fixture_make(c2t_fixture *f);

#endif
