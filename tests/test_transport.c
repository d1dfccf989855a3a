/* test_transport.c: whole photon histories through small geometries with
 * analytic answers (attenuation, time of flight, detection efficiency,
 * reemission spectrum and delay), the guards, the sources, and photons aimed
 * at PMTs of the built-in detector. */
#include <stdlib.h>
#include <string.h>

#include "../kernels/geometry/geometry_int.h"
#include "../kernels/physics/propagate.h"
#include "check.h"
#include "util.h"

/* A box world of half-size h: inside material m, outside black, surface s. */
static c2_geometry *box_world(float h, float rindex, float abslen, float scatlen, float detect, float absorb,
                              float specular)
{
    c2_geometry *g = c2t_geometry();
    uint32_t inside = c2t_material(g, rindex, abslen, scatlen);
    uint32_t black = c2t_material(g, 1.0f, 1e-3f, 1e30f);
    uint32_t s = c2t_surface(g, detect, absorb, 0.0f, specular);
    c2t_box(g, h, inside, black, (int32_t)s, 0);
    c2t_build(g);
    return g;
}

static uint32_t count_flags(const c2_event_result *r, uint32_t flags)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->nphotons; i++) {
        n += (r->photons[i].flags & flags) == flags;
    }
    return n;
}

TEST(transport_attenuation)
{
    const float L = 500.0f, h = 1000.0f;
    c2_geometry *g = box_world(h, 1.0f, L, 1e30f, 0.0f, 1.0f, 0.0f);
    const uint32_t n = 200000;
    const float starts[2] = {-500.0f, 500.0f}, up[3] = {0, 0, 1};
    for (int k = 0; k < 2; k++) {
        const float pos[3] = {0, 0, starts[k]};
        c2_photon *ph = c2t_beam(n, pos, up, 400.0f);
        c2_event ev = c2t_event(1, 11 + k, ph, n, NULL, 0, C2_RETURN_PHOTONS);
        c2_event_result r = c2t_run(g, &ev, 0);
        double d = h - starts[k], expect = exp(-d / L);
        uint32_t survived = count_flags(&r, C2_SURFACE_ABSORB), absorbed = count_flags(&r, C2_BULK_ABSORB);
        CHECK(survived + absorbed == n, "%u photons neither absorbed in bulk nor at the wall", n - survived - absorbed);
        char what[64];
        snprintf(what, sizeof what, "fraction surviving %.0f mm (L %.0f mm)", d, L);
        CHECK_SIGMA((double)survived / n, expect, c2t_binomial_sigma(expect, n), 5, what);
        /* absorbed photons stop at distances with mean L - d e^(-d/L) / (1 - e^(-d/L)) */
        double sum = 0, sum2 = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (r.photons[i].flags & C2_BULK_ABSORB) {
                double x = r.photons[i].pos[2] - starts[k];
                sum += x;
                sum2 += x * x;
            }
        }
        double mean = sum / absorbed, sd = sqrt(sum2 / absorbed - mean * mean);
        CHECK_SIGMA(mean, L - d * expect / (1 - expect), sd / sqrt(absorbed), 5, "mean bulk absorption depth");
        c2_event_result_free(&r);
        free(ph);
    }
    c2_geometry_free(g);
}

TEST(transport_time_of_flight)
{
    const float n_index = 1.5f;
    c2_geometry *g = box_world(1000.0f, n_index, 1e30f, 1e30f, 1.0f, 0.0f, 0.0f);
    c2_source src = {{10, -20, 30}, 5.0f, {0, 0, 1}, -2.0f, 420.0f, -1, 20000, 0};
    c2_event ev = c2t_event(2, 22, NULL, 0, &src, 1, C2_RETURN_HITS);
    c2_event_result r = c2t_run(g, &ev, 0);
    CHECK(r.nhits == 20000, "%u of 20000 photons detected on a fully detecting wall", r.nhits);
    double worst = 0;
    for (uint32_t i = 0; i < r.nhits; i++) {
        c2k_vec3 d = c2k_sub(c2k_load3(r.hits[i].pos), c2k_load3(src.pos));
        double expect = src.time + n_index * c2k_norm(d) / C2K_SPEED_OF_LIGHT;
        worst = fmax(worst, fabs(r.hits[i].time - expect) / expect);
    }
    printf("  worst relative error of t = t0 + n d / c over %u hits: %.3g (tol 1e-5)\n", r.nhits, worst);
    CHECK(worst < 1e-5, "time of flight off by %g relative", worst);
    c2_event_result_free(&r);
    c2_geometry_free(g);
}

TEST(transport_detection_efficiency)
{
    const float eff = 0.25f;
    c2_geometry *g = box_world(1000.0f, 1.33f, 1e30f, 1e30f, eff, 1.0f - eff, 0.0f);
    const uint32_t n = 200000;
    c2_source src = {{0, 0, 0}, 0.0f, {0, 0, 1}, -2.0f, 400.0f, -1, n, 0};
    c2_event ev = c2t_event(3, 33, NULL, 0, &src, 1, C2_RETURN_HITS | C2_RETURN_CHANNELS);
    c2_event_result r = c2t_run(g, &ev, 0);
    CHECK_SIGMA((double)r.nhits / n, eff, c2t_binomial_sigma(eff, n), 5, "detected fraction");
    CHECK(r.nchannels == 1 && r.channels[0].channel == 0 && r.channels[0].count == r.nhits,
          "channel summary disagrees with the hits");
    float first = INFINITY;
    for (uint32_t i = 0; i < r.nhits; i++) {
        first = fminf(first, r.hits[i].time);
        CHECK(r.hits[i].flags == C2_SURFACE_DETECT && r.hits[i].channel == 0, "hit %u: flags 0x%x channel %d", i,
              r.hits[i].flags, r.hits[i].channel);
    }
    CHECK(r.channels[0].first_time == first, "earliest time %g, hits say %g", r.channels[0].first_time, first);
    c2_event_result_free(&r);
    c2_geometry_free(g);
}

TEST(transport_reemission_spectrum)
{
    /* reemits everything below 350 nm, nothing from 400 nm; reemitted
     * light (400..600 nm, triangular) is then absorbed for good */
    const float tau = 5.0f;
    float cdf[C2T_NWL];
    c2_geometry *g = c2t_scintillator_box(tau, cdf);

    enum { N = 200000 };
    c2_source src = {{0, 0, 0}, 0.0f, {0, 0, 1}, -2.0f, 300.0f, -1, N, 0};
    c2_event ev = c2t_event(4, 44, NULL, 0, &src, 1, C2_RETURN_PHOTONS);
    c2_event_result r = c2t_run(g, &ev, 0);
    CHECK(r.nreemit == N, "%u reemissions for %d photons", r.nreemit, N);
    long hist[C2T_NWL] = {0};
    double tsum = 0, tsum2 = 0;
    for (uint32_t i = 0; i < N; i++) {
        const c2_photon *p = &r.photons[i];
        CHECK(p->flags == (C2_BULK_REEMIT | C2_BULK_ABSORB), "photon %u flags 0x%x", i, p->flags);
        int b = (int)((p->wavelength - C2T_WL_MIN) / C2T_WL_STEP);
        hist[b < 0 ? 0 : b >= C2T_NWL ? C2T_NWL - 1 : b]++;
        tsum += p->time;
        tsum2 += (double)p->time * p->time;
    }
    double chi2 = 0;
    int bins = 0;
    for (int b = 0; b + 1 < C2T_NWL; b++) {
        double e = (cdf[b + 1] - cdf[b]) * N;
        if (e > 0) {
            chi2 += (hist[b] - e) * (hist[b] - e) / e;
            bins++;
        } else {
            CHECK(hist[b] == 0, "%ld photons reemitted in bin %d where the CDF is flat", hist[b], b);
        }
    }
    double limit = c2t_chi2_limit(bins - 1, 5.0);
    printf("  reemitted wavelengths: chi2 %.1f over %d bins (limit %.1f at 5 sigma)\n", chi2, bins, limit);
    CHECK(chi2 < limit, "reemitted wavelengths do not follow the CDF");
    /* two absorption lengths of flight are ~0.01 ns; the delay dominates */
    double mean = tsum / N, sd = sqrt(tsum2 / N - mean * mean);
    CHECK_SIGMA(mean, tau + 2.0 * 1.5 / C2K_SPEED_OF_LIGHT, sd / sqrt((double)N), 5, "mean reemission time (ns)");
    c2_event_result_free(&r);
    c2_geometry_free(g);
}

TEST(transport_wls_surface)
{
    /* the wall shifts half of the 300 nm light into 400..500 nm, emitted
     * isotropically from the wall; the rest crosses it. Beyond the wall no
     * triangle is left, so every photon ends leaving the world (NO_HIT). */
    c2_geometry *g = c2t_wls_box();
    enum { N = 200000 };
    c2_source src = {{0, 0, 0}, 0.0f, {0, 0, 1}, -2.0f, 300.0f, -1, N, 0};
    c2_event ev = c2t_event(8, 88, NULL, 0, &src, 1, C2_RETURN_PHOTONS);
    c2_event_result r = c2t_run(g, &ev, 0);
    uint32_t shifted = 0;
    double wsum = 0;
    for (uint32_t i = 0; i < N; i++) {
        const c2_photon *p = &r.photons[i];
        CHECK(p->flags & C2_NO_HIT, "photon %u flags 0x%x", i, p->flags);
        if (p->flags & C2_SURFACE_REEMIT) {
            shifted++;
            CHECK(p->wavelength >= 400.0f && p->wavelength <= 500.0f, "shifted to %g nm", p->wavelength);
            wsum += p->wavelength;
        } else {
            CHECK(p->wavelength == 300.0f && (p->flags & C2_SURFACE_TRANSMIT), "photon %u: %g nm, flags 0x%x", i,
                  p->wavelength, p->flags);
        }
    }
    CHECK(r.nreemit == shifted, "%u reemissions counted, %u photons shifted", r.nreemit, shifted);
    CHECK_SIGMA((double)shifted / N, 0.5, c2t_binomial_sigma(0.5, N), 5, "fraction shifted at the wall");
    CHECK_SIGMA(wsum / shifted, 450.0, 100.0 / sqrt(12.0 * shifted), 5, "<shifted wavelength>");
    c2_event_result_free(&r);
    c2_geometry_free(g);
}

TEST(transport_max_steps_guard)
{
    /* a mirror box with nothing to absorb: photons bounce until the guard */
    c2_geometry *g = box_world(100.0f, 1.0f, 1e30f, 1e30f, 0.0f, 0.0f, 1.0f);
    const float pos[3] = {1, 2, 3}, dir[3] = {0.6f, 0.0f, 0.8f};
    c2_photon *ph = c2t_beam(100, pos, dir, 400.0f);
    c2_event ev = c2t_event(5, 55, ph, 100, NULL, 0, C2_RETURN_PHOTONS);
    ev.max_steps = 50;
    c2_event_result r = c2t_run(g, &ev, 0);
    CHECK(r.nmaxsteps == 100, "%u of 100 photons stopped by the guard", r.nmaxsteps);
    for (uint32_t i = 0; i < 100; i++) {
        CHECK(r.photons[i].steps == 50 && (r.photons[i].flags & C2_MAX_STEPS) &&
                  (r.photons[i].flags & C2_REFLECT_SPECULAR),
              "photon %u: %u steps, flags 0x%x", i, r.photons[i].steps, r.photons[i].flags);
    }
    c2_event_result_free(&r);
    free(ph);
    c2_geometry_free(g);
}

TEST(transport_nan_guard)
{
    c2_geometry *g = box_world(100.0f, 1.0f, 1e30f, 1e30f, 0.0f, 1.0f, 0.0f);
    c2k_geom v = c2i_geometry_view(g);
    c2_photon p;
    memset(&p, 0, sizeof p);
    p.dir[0] = NAN;
    p.dir[2] = 1.0f;
    p.pol[0] = 1.0f;
    p.wavelength = 400.0f;
    c2k_photon_reset(&p, 0, 0);
    c2k_rng r = c2k_photon_rng(1, 1, &p);
    c2k_status st = c2k_step(&v, &p, &r, 10);
    printf("  NaN direction: status %d flags 0x%x\n", st, p.flags);
    CHECK(st == C2K_DONE && (p.flags & C2_NAN_ABORT), "a NaN photon was not stopped");
    c2_geometry_free(g);
}

TEST(transport_sources)
{
    c2_geometry *g = box_world(1000.0f, 1.0f, 1e30f, 1e30f, 1.0f, 0.0f, 0.0f);
    enum { N = 200000 };
    float spectrum[C2T_NWL];
    for (int i = 0; i < C2T_NWL; i++) { /* flat from 300 to 500 nm */
        float wl = C2T_WL_MIN + C2T_WL_STEP * i;
        spectrum[i] = fminf(fmaxf((wl - 300.0f) / 200.0f, 0.0f), 1.0f);
    }
    const float ch = cosf(20.0f * C2K_PI / 180.0f);
    c2_source src[3] = {{{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 400.0f, -1, N, 0},
                        {{0, 0, 0}, 0, {0, 0.6f, 0.8f}, ch, 400.0f, -1, N, 0},
                        {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 0.0f, 0, N, 0}};
    const float pos[3] = {0, 0, 0}, dir[3] = {1, 0, 0};
    c2_photon *ph = c2t_beam(10, pos, dir, 400.0f);
    c2_event ev = c2t_event(6, 66, ph, 10, src, 3, C2_RETURN_PHOTONS);
    ev.spectra = spectrum;
    ev.nspectra = 1;
    c2_event_result r = c2t_run(g, &ev, 0);
    CHECK(r.nphotons == 10 + 3 * N, "%u photons", r.nphotons);
    for (uint32_t i = 0; i < r.nphotons; i++) {
        CHECK(r.photons[i].id == i && r.photons[i].event == 0, "photon %u has id %u", i, r.photons[i].id);
        CHECK(r.photons[i].flags == C2_SURFACE_DETECT, "photon %u flags 0x%x", i, r.photons[i].flags);
    }
    /* isotropic: each direction component has mean 0 and z is uniform */
    const c2_photon *iso = r.photons + 10, *cone = iso + N, *spec = cone + N;
    double m[3] = {0};
    long zh[20] = {0};
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 3; k++) {
            m[k] += iso[i].dir[k];
        }
        int b = (int)((iso[i].dir[2] + 1) * 10);
        zh[b > 19 ? 19 : b]++;
    }
    for (int k = 0; k < 3; k++) {
        CHECK_SIGMA(m[k] / N, 0.0, sqrt(1.0 / 3.0 / N), 5, k == 0 ? "isotropic <x>" : k == 1 ? "isotropic <y>" : "isotropic <z>");
    }
    double chi2 = 0;
    for (int b = 0; b < 20; b++) {
        chi2 += (zh[b] - N / 20.0) * (zh[b] - N / 20.0) / (N / 20.0);
    }
    printf("  isotropic cos(theta) chi2 %.1f (limit %.1f)\n", chi2, c2t_chi2_limit(19, 5));
    CHECK(chi2 < c2t_chi2_limit(19, 5), "isotropic source not uniform in cos(theta)");
    /* cone: within the half angle, cos uniform on [cos_half, 1] */
    double csum = 0;
    c2k_vec3 axis = c2k_load3(src[1].dir);
    for (int i = 0; i < N; i++) {
        double c = c2k_dot(c2k_load3(cone[i].dir), axis);
        CHECK(c >= ch - 1e-5, "cone photon %d at cos %g outside %g", i, c, ch);
        csum += c;
    }
    CHECK_SIGMA(csum / N, 0.5 * (1 + ch), (1 - ch) / sqrt(12.0 * N), 5, "cone <cos>");
    /* spectrum: flat on [300, 500] */
    double wsum = 0;
    for (int i = 0; i < N; i++) {
        CHECK(spec[i].wavelength >= 300.0f && spec[i].wavelength <= 500.0f, "wavelength %g", spec[i].wavelength);
        wsum += spec[i].wavelength;
    }
    CHECK_SIGMA(wsum / N, 400.0, 200.0 / sqrt(12.0 * N), 5, "spectrum <wavelength>");
    c2_event_result_free(&r);
    free(ph);
    c2_geometry_free(g);
}

TEST(transport_detector_pmt_hits)
{
    /* photons from the centre at the apex of PMT k: those that meet nothing
     * on the way (exp(-d (1/La + 1/Ls))) reach channel k, where 25% are
     * detected, at t = n d / c */
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_error err = {0};
    c2_geometry *g = c2_detector_build(&p, NULL, &err);
    CHECK(g, "%s", err.msg);
    c2k_geom v = c2i_geometry_view(g);
    const int pmts[3] = {0, 1234, 4999};
    const uint32_t n = 60000;
    for (int k = 0; k < 3; k++) {
        /* the apex is the dome vertex of channel k nearest the centre */
        c2k_vec3 apex = c2k_v3(0, 0, 0);
        float d = INFINITY;
        for (uint32_t t = 0; t < v.ntriangles; t++) {
            for (int c = 0; c < 3 && v.tri[t].channel == pmts[k]; c++) {
                c2k_vec3 x = c2k_load3(v.verts + 9 * (size_t)t + 3 * c);
                if (c2k_norm(x) < d) {
                    d = c2k_norm(x);
                    apex = x;
                }
            }
        }
        c2k_vec3 dir = c2k_normalize(apex);
        const float pos[3] = {0, 0, 0}, dv[3] = {dir.x, dir.y, dir.z};
        c2_photon *ph = c2t_beam(n, pos, dv, 400.0f);
        c2_event ev = c2t_event(7, 77 + k, ph, n, NULL, 0, C2_RETURN_PHOTONS | C2_RETURN_HITS);
        c2_event_result r = c2t_run(g, &ev, 0);
        uint32_t clear = 0, detected = 0;
        float n400 = 1.325f + 2880.0f / (400.0f * 400.0f);
        for (uint32_t i = 0; i < n; i++) {
            const c2_photon *q = &r.photons[i];
            if (q->flags == C2_SURFACE_DETECT || q->flags == C2_SURFACE_ABSORB) {
                clear++;
                CHECK(fabsf(c2k_norm(c2k_load3(q->pos)) - d) < 0.05f, "unscattered photon %u stopped at %g, apex at %g",
                      i, c2k_norm(c2k_load3(q->pos)), d);
                if (q->flags == C2_SURFACE_DETECT) {
                    detected++;
                    CHECK(q->channel == pmts[k], "photon %u detected by channel %d, aimed at %d", i, q->channel,
                          pmts[k]);
                    CHECK(fabsf(q->time - n400 * d / C2K_SPEED_OF_LIGHT) < 1e-3f, "photon %u at %g ns", i, q->time);
                }
            }
        }
        double expect = exp(-d / p.absorption_length - d / p.scattering_length);
        printf("  PMT %d at %.1f mm:\n", pmts[k], d);
        CHECK_SIGMA((double)clear / n, expect, c2t_binomial_sigma(expect, n), 5, "fraction reaching it unscattered");
        CHECK_SIGMA((double)detected / clear, 0.25, c2t_binomial_sigma(0.25, clear), 5, "detected among those");
        c2_event_result_free(&r);
        free(ph);
    }
    c2_geometry_free(g);
}
