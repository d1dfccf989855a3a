/* test_geometry.c: the BVH traversal against brute force on random meshes,
 * watertightness at shared edges and vertices, the builder's invariants,
 * input validation, and the built-in detector's shape. */
#include <stdlib.h>
#include <string.h>

#include "../kernels/geometry/geometry_int.h"
#include "../kernels/physics/rng.h"
#include "check.h"
#include "util.h"

/* Walks the tree: boxes nest, leaves cover every triangle exactly once,
 * depth stays within the traversal stack. */
static void check_bvh(const c2_geometry *g)
{
    c2k_geom v = c2i_geometry_view(g);
    uint8_t *seen = calloc(v.ntriangles, 1);
    uint32_t stack[2 * C2K_BVH_MAX_DEPTH], depth[2 * C2K_BVH_MAX_DEPTH], sp = 0, leaves = 0, max_depth = 0;
    stack[sp] = 0;
    depth[sp++] = 0;
    while (sp) {
        sp--;
        uint32_t ni = stack[sp], d = depth[sp];
        CHECK(ni < v.nnodes, "node %u out of %u", ni, v.nnodes);
        CHECK(d < C2K_BVH_MAX_DEPTH, "depth %u exceeds the traversal stack", d);
        max_depth = d > max_depth ? d : max_depth;
        const c2k_node *n = &v.nodes[ni];
        if (n->count) {
            leaves++;
            CHECK(n->first + (uint64_t)n->count <= v.ntriangles, "leaf %u range past the triangles", ni);
            for (uint32_t t = n->first; t < n->first + n->count; t++) {
                CHECK(!seen[t], "triangle %u in two leaves", t);
                seen[t] = 1;
                for (int k = 0; k < 9; k++) {
                    float x = v.verts[9 * (size_t)t + k];
                    CHECK(x >= n->lo[k % 3] && x <= n->hi[k % 3], "triangle %u outside its leaf %u", t, ni);
                }
            }
        } else {
            for (int c = 0; c < 2; c++) {
                const c2k_node *ch = &v.nodes[n->first + c];
                for (int k = 0; k < 3; k++) {
                    CHECK(ch->lo[k] >= n->lo[k] && ch->hi[k] <= n->hi[k], "child of node %u pokes out", ni);
                }
                stack[sp] = n->first + c;
                depth[sp++] = d + 1;
            }
        }
    }
    for (uint32_t t = 0; t < v.ntriangles; t++) {
        CHECK(seen[t], "triangle %u in no leaf", t);
    }
    printf("  bvh: %u triangles, %u nodes, %u leaves, depth %u\n", v.ntriangles, v.nnodes, leaves, max_depth);
    free(seen);
}

/* Closest hit by testing every triangle. */
static int32_t brute_force(const c2k_geom *v, c2k_vec3 org, c2k_vec3 dir, int32_t skip, float *dist)
{
    c2k_ray r = c2k_ray_make(org, dir);
    float best = INFINITY;
    int32_t hit = -1;
    for (uint32_t t = 0; t < v->ntriangles; t++) {
        if ((int32_t)t == skip) {
            continue;
        }
        float d = c2k_ray_triangle(&r, v->verts + 9 * (size_t)t, best);
        if (d > 0) {
            best = d;
            hit = (int32_t)t;
        }
    }
    *dist = best;
    return hit;
}

static c2_geometry *random_mesh(uint32_t ntris, uint32_t seed)
{
    c2_geometry *g = c2t_geometry();
    uint32_t m = c2t_material(g, 1.0f, 1e6f, 1e6f);
    float *verts = malloc((size_t)ntris * 9 * sizeof(float));
    uint32_t *tris = malloc((size_t)ntris * 3 * sizeof(uint32_t));
    c2k_rng r = c2k_rng_init(seed, 0, 0, 0);
    for (uint32_t t = 0; t < ntris; t++) {
        float c[3], s = 20.0f + 200.0f * c2k_uniform(&r);
        for (int k = 0; k < 3; k++) {
            c[k] = 2000.0f * c2k_uniform(&r) - 1000.0f;
        }
        for (int i = 0; i < 9; i++) {
            verts[9 * t + i] = c[i % 3] + s * (c2k_uniform(&r) - 0.5f);
        }
        tris[3 * t] = 3 * t;
        tris[3 * t + 1] = 3 * t + 1;
        tris[3 * t + 2] = 3 * t + 2;
    }
    c2_error err = {0};
    uint32_t mesh;
    CHECK(c2_geometry_add_mesh(g, verts, 3 * ntris, tris, ntris, &mesh, &err) == 0, "%s", err.msg);
    c2_solid_desc sd = {mesh, m, m, C2_NO_SURFACE, C2_NO_CHANNEL, NULL, NULL};
    CHECK(c2_geometry_add_solid(g, &sd, NULL, &err) == 0, "%s", err.msg);
    c2t_build(g);
    free(verts);
    free(tris);
    return g;
}

TEST(geometry_ray_mesh_vs_brute_force)
{
    for (uint32_t trial = 0; trial < 3; trial++) {
        uint32_t ntris = trial == 0 ? 1 : trial == 1 ? 37 : 4000;
        c2_geometry *g = random_mesh(ntris, 100 + trial);
        c2k_geom v = c2i_geometry_view(g);
        int hits = 0;
        for (uint32_t i = 0; i < 20000; i++) {
            c2k_rng r = c2k_rng_init(200 + trial, 0, i, 0);
            c2k_vec3 org = c2k_v3(2400 * c2k_uniform(&r) - 1200, 2400 * c2k_uniform(&r) - 1200,
                                  2400 * c2k_uniform(&r) - 1200);
            c2k_vec3 dir = c2k_uniform_sphere(&r);
            if (i % 97 == 0) { /* axis-parallel rays exercise 0 * inf in the slab test */
                dir = c2k_v3(0, 0, i % 2 ? 1.0f : -1.0f);
            }
            float d1, d2;
            int32_t t1 = c2k_intersect(&v, org, dir, -1, &d1);
            int32_t t2 = brute_force(&v, org, dir, -1, &d2);
            CHECK(t1 == t2 && (t1 < 0 || d1 == d2), "ray %u: bvh says %d at %g, brute force %d at %g", i, t1, d1, t2,
                  d2);
            if (t1 >= 0) {
                hits++;
                /* skipping the triangle just hit finds the next one */
                t1 = c2k_intersect(&v, org, dir, t2, &d1);
                t2 = brute_force(&v, org, dir, t2, &d2);
                CHECK(t1 == t2, "ray %u with skip: bvh %d, brute force %d", i, t1, t2);
            }
        }
        printf("  %u triangles: 20000 rays agree, %d hit\n", ntris, hits);
        CHECK(ntris < 1000 || hits > 1000, "too few hits (%d) for the test to mean much", hits);
        c2_geometry_free(g);
    }
}

TEST(geometry_watertight)
{
    /* rays aimed exactly at the vertices and edge midpoints of a closed
     * mesh from inside must always hit it */
    c2_geometry *g = c2t_geometry();
    uint32_t m = c2t_material(g, 1.0f, 1e6f, 1e6f);
    c2i_mesh sphere = {0};
    CHECK(c2i_mesh_icosphere(&sphere, 1000.0f, 3) == 0, "icosphere");
    c2_error err = {0};
    uint32_t mesh;
    CHECK(c2_geometry_add_mesh(g, sphere.verts, sphere.nverts, sphere.tris, sphere.ntris, &mesh, &err) == 0, "%s",
          err.msg);
    c2_solid_desc sd = {mesh, m, m, C2_NO_SURFACE, C2_NO_CHANNEL, NULL, NULL};
    CHECK(c2_geometry_add_solid(g, &sd, NULL, &err) == 0, "%s", err.msg);
    c2t_build(g);
    c2k_geom v = c2i_geometry_view(g);
    long rays = 0, misses = 0;
    for (uint32_t t = 0; t < v.ntriangles; t++) {
        const float *tv = v.verts + 9 * (size_t)t;
        for (int c = 0; c < 3; c++) {
            c2k_vec3 a = c2k_load3(tv + 3 * c), b = c2k_load3(tv + 3 * ((c + 1) % 3));
            c2k_vec3 targets[2] = {a, c2k_scale(c2k_add(a, b), 0.5f)};
            for (int k = 0; k < 2; k++) {
                for (uint32_t o = 0; o < 4; o++) {
                    c2k_rng r = c2k_rng_init(300, t, (uint32_t)(8 * c + 4 * k) + o, 0);
                    c2k_vec3 org = o == 0 ? c2k_v3(0, 0, 0) : c2k_scale(c2k_uniform_sphere(&r), 500.0f * c2k_uniform(&r));
                    c2k_vec3 dir = c2k_normalize(c2k_sub(targets[k], org));
                    float d;
                    rays++;
                    misses += c2k_intersect(&v, org, dir, -1, &d) < 0;
                }
            }
        }
    }
    printf("  %ld rays through vertices and edges of a %u-triangle sphere: %ld missed\n", rays, v.ntriangles, misses);
    CHECK(misses == 0, "%ld rays slipped through the closed mesh", misses);
    check_bvh(g);
    c2i_mesh_free(&sphere);
    c2_geometry_free(g);
}

TEST(geometry_bvh_invariants)
{
    const uint32_t sizes[] = {1, 2, 9, 1000, 50000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        c2_geometry *g = random_mesh(sizes[i], 400 + (uint32_t)i);
        check_bvh(g);
        c2_geometry_free(g);
    }
    /* many identical triangles: no centroid split exists, leaves must stay bounded */
    c2_geometry *g = c2t_geometry();
    uint32_t m = c2t_material(g, 1.0f, 1e6f, 1e6f);
    const float tri[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0};
    const uint32_t ix[3] = {0, 1, 2};
    uint32_t mesh;
    c2_error err = {0};
    CHECK(c2_geometry_add_mesh(g, tri, 3, ix, 1, &mesh, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 1000; k++) {
        c2_solid_desc sd = {mesh, m, m, C2_NO_SURFACE, C2_NO_CHANNEL, NULL, NULL};
        CHECK(c2_geometry_add_solid(g, &sd, NULL, &err) == 0, "%s", err.msg);
    }
    c2_build_stats st;
    CHECK(c2_geometry_build(g, &st, &err) == 0, "%s", err.msg);
    printf("  1000 coincident triangles: depth %u, largest leaf %u\n", st.depth, st.max_leaf);
    CHECK(st.max_leaf <= 8, "leaf of %u coincident triangles", st.max_leaf);
    check_bvh(g);
    c2_geometry_free(g);
}

/* Expects call to fail with code and a message containing needle. */
#define EXPECT_ERROR(call, want_code, needle)                                                       \
    do {                                                                                            \
        int rc_ = (call);                                                                           \
        printf("  %-28s -> %s: %s\n", needle, c2_errname(rc_), err.msg);                            \
        CHECK(rc_ == (want_code), "expected %s, got %s", c2_errname(want_code), c2_errname(rc_));   \
        CHECK(strstr(err.msg, needle), "message '%s' does not name '%s'", err.msg, needle);          \
    } while (0)

TEST(geometry_rejects_bad_input)
{
    c2_error err = {0};
    CHECK(!c2_geometry_new(200, 0, 10, &err) && err.code == C2_EINVAL, "zero step accepted");
    CHECK(!c2_geometry_new(200, 5, 1, &err) && err.code == C2_ERANGE, "one-point grid accepted");
    c2_geometry *g = c2t_geometry();
    float good[C2T_NWL], bad[C2T_NWL];
    for (int i = 0; i < C2T_NWL; i++) {
        good[i] = 1.0f;
        bad[i] = 1.0f;
    }
    bad[7] = -1.0f;
    c2_material_desc md = {0};
    md.refractive_index = good;
    md.absorption_length = bad;
    md.scattering_length = good;
    EXPECT_ERROR(c2_geometry_add_material(g, &md, NULL, &err), C2_ERANGE, "absorption_length[7]");
    md.absorption_length = good;
    bad[7] = NAN;
    md.scattering_length = bad;
    EXPECT_ERROR(c2_geometry_add_material(g, &md, NULL, &err), C2_ERANGE, "scattering_length[7]");
    md.scattering_length = good;
    md.reemission_prob = good; /* reemits but has no CDF */
    EXPECT_ERROR(c2_geometry_add_material(g, &md, NULL, &err), C2_EINVAL, "reemission_cdf");
    md.reemission_prob = NULL;
    uint32_t mat;
    CHECK(c2_geometry_add_material(g, &md, &mat, &err) == 0, "%s", err.msg);

    c2_surface_desc sd = {0};
    sd.detect = good;
    sd.absorb = good; /* 1 + 1 > 1 */
    EXPECT_ERROR(c2_geometry_add_surface(g, &sd, NULL, &err), C2_ERANGE, "detect + absorb");
    sd.model = (c2_surface_model)9;
    EXPECT_ERROR(c2_geometry_add_surface(g, &sd, NULL, &err), C2_EINVAL, "model");

    const float v[12] = {0, 0, 0, 1, 0, 0, 2, 0, 0, NAN, 0, 0};
    const uint32_t flat[3] = {0, 1, 2}, outside[3] = {0, 1, 5}, nan_tri[3] = {0, 1, 3};
    EXPECT_ERROR(c2_geometry_add_mesh(g, v, 3, flat, 1, NULL, &err), C2_EINVAL, "zero area");
    EXPECT_ERROR(c2_geometry_add_mesh(g, v, 3, outside, 1, NULL, &err), C2_ERANGE, "refers to vertex 5");
    EXPECT_ERROR(c2_geometry_add_mesh(g, v, 4, nan_tri, 1, NULL, &err), C2_ERANGE, "vertex 3");

    const float ok[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0};
    uint32_t mesh;
    CHECK(c2_geometry_add_mesh(g, ok, 3, flat, 1, &mesh, &err) == 0, "%s", err.msg);
    c2_solid_desc so = {mesh, mat, 5, C2_NO_SURFACE, C2_NO_CHANNEL, NULL, NULL};
    EXPECT_ERROR(c2_geometry_add_solid(g, &so, NULL, &err), C2_EINVAL, "material 5");
    const float shear[9] = {1, 0.5f, 0, 0, 1, 0, 0, 0, 1}, mirror[9] = {-1, 0, 0, 0, 1, 0, 0, 0, 1};
    so.outer_material = mat;
    so.rot = shear;
    EXPECT_ERROR(c2_geometry_add_solid(g, &so, NULL, &err), C2_EINVAL, "rotation");
    so.rot = mirror;
    EXPECT_ERROR(c2_geometry_add_solid(g, &so, NULL, &err), C2_EINVAL, "rotation");
    so.rot = NULL;
    so.surface = 3;
    EXPECT_ERROR(c2_geometry_add_solid(g, &so, NULL, &err), C2_EINVAL, "surface 3");
    so.surface = C2_NO_SURFACE;
    EXPECT_ERROR(c2_geometry_build(g, NULL, &err), C2_EINVAL, "no solids");
    CHECK(c2_geometry_add_solid(g, &so, NULL, &err) == 0, "%s", err.msg);
    EXPECT_ERROR(c2_geometry_set_triangle_surface(g, 0, 0, 2, C2_NO_SURFACE, 1, &err), C2_ERANGE, "outside");
    c2t_build(g);
    EXPECT_ERROR(c2_geometry_add_material(g, &md, NULL, &err), C2_ESTATE, "already built");
    c2_geometry_free(g);
}

TEST(geometry_default_detector)
{
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_build_stats st;
    c2_error err = {0};
    c2_geometry *g = c2_detector_build(&p, &st, &err);
    CHECK(g, "%s", err.msg);
    printf("  %llu triangles, %llu nodes, depth %u, largest leaf %u, %.1f MB, built in %.2f s\n",
           (unsigned long long)st.triangles, (unsigned long long)st.nodes, st.depth, st.max_leaf, st.bytes / 1e6,
           st.seconds);
    CHECK(st.triangles == 20480u + 5000u * 200u, "%llu triangles", (unsigned long long)st.triangles);
    CHECK(c2_geometry_nchannels(g) == 5000, "%u channels", c2_geometry_nchannels(g));
    check_bvh(g);

    /* every PMT lies inside the shell's innermost point, and every dome
     * triangle of PMT k carries channel k */
    c2k_geom v = c2i_geometry_view(g);
    float shell_min = INFINITY, pmt_max = 0;
    uint32_t *dome = calloc(5000, sizeof *dome);
    for (uint32_t t = 0; t < v.ntriangles; t++) {
        const float *tv = v.verts + 9 * (size_t)t;
        c2k_vec3 c = c2k_scale(c2k_add(c2k_load3(tv), c2k_add(c2k_load3(tv + 3), c2k_load3(tv + 6))), 1.0f / 3);
        if (v.tri[t].solid == 0) {
            shell_min = fminf(shell_min, c2k_norm(c));
        } else {
            for (int k = 0; k < 3; k++) {
                pmt_max = fmaxf(pmt_max, c2k_norm(c2k_load3(tv + 3 * k)));
            }
            CHECK(v.tri[t].channel == -1 || v.tri[t].channel == (int32_t)v.tri[t].solid - 1,
                  "triangle %u of solid %u has channel %d", t, v.tri[t].solid, v.tri[t].channel);
            dome[v.tri[t].solid - 1] += v.tri[t].channel >= 0;
        }
    }
    printf("  shell innermost %.2f mm, PMTs outermost %.2f mm\n", shell_min, pmt_max);
    CHECK(pmt_max < shell_min, "PMTs poke through the shell");
    for (int k = 0; k < 5000; k++) {
        CHECK(dome[k] == 180, "PMT %d has %u photocathode triangles", k, dome[k]);
    }
    free(dome);

    /* a closed PMT mesh: each directed edge once, its reverse once */
    c2i_mesh h = {0};
    CHECK(c2i_mesh_hemisphere(&h, 200.0f, 20, 5) == 0, "hemisphere");
    for (uint32_t a = 0; a < h.ntris; a++) {
        for (int e = 0; e < 3; e++) {
            uint32_t u = h.tris[3 * a + e], w = h.tris[3 * a + (e + 1) % 3], reverse = 0;
            for (uint32_t b = 0; b < h.ntris; b++) {
                for (int f = 0; f < 3; f++) {
                    reverse += h.tris[3 * b + f] == w && h.tris[3 * b + (f + 1) % 3] == u;
                }
            }
            CHECK(reverse == 1, "edge %u-%u of the PMT mesh has %u opposite edges", u, w, reverse);
        }
    }
    c2i_mesh_free(&h);
    c2_geometry_free(g);
}

/* FNV-1a over a content stream: enough to compare two streams. */
static void content_hash(const void *data, size_t len, void *ctx)
{
    uint64_t *h = ctx;
    for (size_t i = 0; i < len; i++) {
        *h = (*h ^ ((const uint8_t *)data)[i]) * 1099511628211ull;
    }
}

TEST(geometry_content_identity)
{
    /* the content stream (what digests hash) is the same for the same
     * geometry built twice, and differs when anything differs */
    uint64_t h[3];
    uint32_t pmts[3] = {300, 300, 301};
    for (int k = 0; k < 3; k++) {
        c2_detector_params p;
        c2_detector_params_default(&p);
        p.npmts = pmts[k];
        c2_error err = {0};
        c2_geometry *g = c2_detector_build(&p, NULL, &err);
        CHECK(g, "%s", err.msg);
        h[k] = 14695981039346656037ull;
        c2_geometry_content(g, content_hash, &h[k]);
        c2_geometry_free(g);
    }
    printf("  content hashes: %016llx %016llx %016llx\n", (unsigned long long)h[0], (unsigned long long)h[1],
           (unsigned long long)h[2]);
    CHECK(h[0] == h[1] && h[0] != h[2], "content stream not a function of the geometry");
}
