/*
 * geom.h: the flattened geometry as the physics sees it, and the queries on
 * it: wavelength-table interpolation, the watertight ray-triangle test and
 * the BVH traversal.
 *
 * c2k_geom holds only pointers and counts. The host builds it over its own
 * arrays (kernels/geometry/); the GPU runtime builds the same struct over
 * device copies, so this code does not know where the memory is.
 */
#ifndef C2K_GEOM_H
#define C2K_GEOM_H

#include "chroma2/engine.h"
#include "vec.h"

/* Per-material tables, each nwl floats, in this order. */
enum { C2K_MAT_RINDEX, C2K_MAT_ABSLEN, C2K_MAT_SCATLEN, C2K_MAT_REEMIT_PROB, C2K_MAT_REEMIT_CDF, C2K_MAT_NPROP };
/* Per-surface tables. */
enum {
    C2K_SURF_DETECT,
    C2K_SURF_ABSORB,
    C2K_SURF_DIFFUSE,
    C2K_SURF_SPECULAR,
    C2K_SURF_REEMIT_PROB,
    C2K_SURF_REEMIT_CDF,
    C2K_SURF_NPROP
};

/* A BVH node, 32 bytes. count > 0: a leaf holding triangles [first,
 * first + count); count == 0: children are nodes first and first + 1. */
typedef struct c2k_node {
    float lo[3];
    uint32_t first;
    float hi[3];
    uint32_t count;
} c2k_node;

/* What a triangle separates; 16 bytes, indexed like the triangles. */
typedef struct c2k_tri_info {
    uint16_t inner, outer; /* materials */
    int32_t surface;       /* C2_NO_SURFACE or a surface id */
    int32_t channel;       /* C2_NO_CHANNEL or a channel id */
    uint32_t solid;
} c2k_tri_info;

#define C2K_BVH_MAX_DEPTH 64 /* the builder makes no deeper tree; sizes the stack */

typedef struct c2k_geom {
    float wl_min, wl_step;
    uint32_t nwl;
    uint32_t nmaterials, nsurfaces, ntriangles, nnodes;
    const float *mat;         /* [nmaterials][C2K_MAT_NPROP][nwl] */
    const float *mat_tau;     /* [nmaterials] reemission time constant, ns */
    const float *surf;        /* [nsurfaces][C2K_SURF_NPROP][nwl] */
    const uint32_t *surf_model; /* [nsurfaces] c2_surface_model */
    const float *surf_tau;    /* [nsurfaces] */
    const float *verts;       /* [ntriangles][3][3], BVH order */
    const c2k_tri_info *tri;  /* [ntriangles] */
    const c2k_node *nodes;    /* [nnodes], root first */
} c2k_geom;

/* ---- wavelength tables ---- */

/* Where a wavelength falls on the grid: table value = t[i] + f (t[i+1] - t[i]).
 * Outside the grid the end values hold. */
typedef struct c2k_wlpos {
    uint32_t i;
    float f;
} c2k_wlpos;

C2K_FN c2k_wlpos c2k_wl_locate(const c2k_geom *g, float wl)
{
    c2k_wlpos w;
    float x = (wl - g->wl_min) / g->wl_step;
    float last = (float)(g->nwl - 1);
    x = fminf(fmaxf(x, 0.0f), last);
    w.i = (uint32_t)x;
    if (w.i >= g->nwl - 1) {
        w.i = g->nwl > 1 ? g->nwl - 2 : 0;
    }
    w.f = g->nwl > 1 ? x - (float)w.i : 0.0f;
    return w;
}

C2K_FN float c2k_wl_interp(const float *table, c2k_wlpos w)
{
    return w.f == 0.0f ? table[w.i] : table[w.i] + w.f * (table[w.i + 1] - table[w.i]);
}

C2K_FN const float *c2k_mat_table(const c2k_geom *g, uint32_t m, int prop)
{
    return g->mat + ((size_t)m * C2K_MAT_NPROP + (size_t)prop) * g->nwl;
}

C2K_FN const float *c2k_surf_table(const c2k_geom *g, uint32_t s, int prop)
{
    return g->surf + ((size_t)s * C2K_SURF_NPROP + (size_t)prop) * g->nwl;
}

/* Inverts a piecewise-linear CDF tabulated on the grid (nondecreasing, last
 * value 1) for u in (0, 1]: the density is flat between grid points. */
C2K_FN float c2k_sample_cdf(const float *cdf, uint32_t nwl, float wl_min, float wl_step, float u)
{
    if (cdf[0] >= u) {
        return wl_min;
    }
    uint32_t lo = 0, hi = nwl - 1; /* cdf[lo] < u <= cdf[hi] */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) >> 1;
        if (cdf[mid] >= u) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    float f = (u - cdf[lo]) / (cdf[hi] - cdf[lo]);
    return wl_min + ((float)lo + f) * wl_step;
}

/* ---- rays ---- */

/* A ray prepared for the watertight test of Woop, Benthin and Wald (JCGT
 * 2013): axes permuted so that kz is the dominant direction axis, and a
 * shear that maps the ray onto +z. */
typedef struct c2k_ray {
    float org[3], dir[3], inv[3];
    int kx, ky, kz;
    float sx, sy, sz;
} c2k_ray;

C2K_FN c2k_ray c2k_ray_make(c2k_vec3 org, c2k_vec3 dir)
{
    c2k_ray r;
    c2k_store3(r.org, org);
    c2k_store3(r.dir, dir);
    for (int k = 0; k < 3; k++) {
        r.inv[k] = 1.0f / r.dir[k];
    }
    float ax = fabsf(dir.x), ay = fabsf(dir.y), az = fabsf(dir.z);
    r.kz = (ax > ay) ? (ax > az ? 0 : 2) : (ay > az ? 1 : 2);
    r.kx = r.kz == 2 ? 0 : r.kz + 1;
    r.ky = r.kx == 2 ? 0 : r.kx + 1;
    if (r.dir[r.kz] < 0.0f) { /* keep the triangle winding test's sign */
        int t = r.kx;
        r.kx = r.ky;
        r.ky = t;
    }
    r.sx = r.dir[r.kx] / r.dir[r.kz];
    r.sy = r.dir[r.ky] / r.dir[r.kz];
    r.sz = 1.0f / r.dir[r.kz];
    return r;
}

/* Distance along the ray to triangle v[9] if in (0, tmax), else -1. Either
 * side of the triangle counts. Watertight: a ray through a shared edge or
 * vertex hits at least one of the triangles around it. */
C2K_FN float c2k_ray_triangle(const c2k_ray *r, const float *v, float tmax)
{
    float a[3], b[3], c[3];
    for (int k = 0; k < 3; k++) {
        a[k] = v[k] - r->org[k];
        b[k] = v[3 + k] - r->org[k];
        c[k] = v[6 + k] - r->org[k];
    }
    const int kx = r->kx, ky = r->ky, kz = r->kz;
    float ax = a[kx] - r->sx * a[kz], ay = a[ky] - r->sy * a[kz];
    float bx = b[kx] - r->sx * b[kz], by = b[ky] - r->sy * b[kz];
    float cx = c[kx] - r->sx * c[kz], cy = c[ky] - r->sy * c[kz];
    float u = cx * by - cy * bx;
    float vv = ax * cy - ay * cx;
    float w = bx * ay - by * ax;
    if (u == 0.0f || vv == 0.0f || w == 0.0f) {
        /* On an edge in float: decide in double so neighbours agree. */
        u = (float)((double)cx * (double)by - (double)cy * (double)bx);
        vv = (float)((double)ax * (double)cy - (double)ay * (double)cx);
        w = (float)((double)bx * (double)ay - (double)by * (double)ax);
    }
    if ((u < 0.0f || vv < 0.0f || w < 0.0f) && (u > 0.0f || vv > 0.0f || w > 0.0f)) {
        return -1.0f;
    }
    float det = u + vv + w;
    if (det == 0.0f) {
        return -1.0f;
    }
    float t = (u * a[kz] + vv * b[kz] + w * c[kz]) * r->sz / det;
    return (t > 0.0f && t < tmax) ? t : -1.0f;
}

/* Entry distance into a node's box if the ray meets it before tmax, else -1.
 * A ray parallel to a slab gets +-inf there, or NaN (0 * inf) exactly in a
 * boundary plane, which the argument order below drops. */
C2K_FN float c2k_ray_box(const c2k_ray *r, const c2k_node *n, float tmax)
{
    float t0 = 0.0f, t1 = tmax;
    for (int k = 0; k < 3; k++) {
        float a = (n->lo[k] - r->org[k]) * r->inv[k];
        float b = (n->hi[k] - r->org[k]) * r->inv[k];
        t0 = c2k_max(c2k_min(a, b), t0); /* a NaN first argument is dropped */
        t1 = c2k_min(c2k_max(a, b), t1);
    }
    return t0 <= t1 ? t0 : -1.0f;
}

/* Closest triangle hit by the ray from org along unit dir, skipping triangle
 * skip (the one the photon just left; -1 for none). Returns its id and sets
 * *dist, or returns -1. Stack traversal, nearer child first. */
C2K_FN int32_t c2k_intersect(const c2k_geom *g, c2k_vec3 org, c2k_vec3 dir, int32_t skip, float *dist)
{
    c2k_ray r = c2k_ray_make(org, dir);
    float best = INFINITY;
    int32_t hit = -1;
    uint32_t stack[C2K_BVH_MAX_DEPTH];
    int sp = 0;
    if (g->nnodes == 0 || c2k_ray_box(&r, &g->nodes[0], best) < 0.0f) {
        return -1;
    }
    uint32_t node = 0;
    for (;;) {
        const c2k_node *n = &g->nodes[node];
        if (n->count > 0) {
            for (uint32_t t = n->first; t < n->first + n->count; t++) {
                if ((int32_t)t == skip) {
                    continue;
                }
                float d = c2k_ray_triangle(&r, g->verts + (size_t)t * 9, best);
                if (d > 0.0f) {
                    best = d;
                    hit = (int32_t)t;
                }
            }
        } else {
            uint32_t left = n->first, right = n->first + 1;
            float dl = c2k_ray_box(&r, &g->nodes[left], best);
            float dr = c2k_ray_box(&r, &g->nodes[right], best);
            if (dl >= 0.0f && dr >= 0.0f) {
                uint32_t near = dl <= dr ? left : right;
                stack[sp++] = dl <= dr ? right : left;
                node = near;
                continue;
            }
            if (dl >= 0.0f || dr >= 0.0f) {
                node = dl >= 0.0f ? left : right;
                continue;
            }
        }
        /* pop the next subtree that can still hold a nearer hit */
        for (;;) {
            if (sp == 0) {
                *dist = best;
                return hit;
            }
            node = stack[--sp];
            if (c2k_ray_box(&r, &g->nodes[node], best) >= 0.0f) {
                break;
            }
        }
    }
}

/* Outward unit normal of triangle t: (v1 - v0) x (v2 - v0). */
C2K_FN c2k_vec3 c2k_tri_normal(const c2k_geom *g, int32_t t)
{
    const float *v = g->verts + (size_t)t * 9;
    c2k_vec3 v0 = c2k_load3(v), v1 = c2k_load3(v + 3), v2 = c2k_load3(v + 6);
    return c2k_normalize(c2k_cross(c2k_sub(v1, v0), c2k_sub(v2, v0)));
}

#endif
