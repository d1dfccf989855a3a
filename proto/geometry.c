/*
 * geometry.c: decoding load_geometry into a built c2_geometry. The tables,
 * meshes and placements go straight into the engine's builder, whose checks
 * name the offending material, surface, mesh or solid; this file checks the
 * message's shape (types, lengths against the grid and the mesh sizes).
 * Every array copied is first checked to match its bin, so memory stays
 * bounded by the message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* An array field of a map, or an error naming it. */
static const msgpack_object *geo_array(c2p_map *m, const char *key, int required, c2p_err *err, int *rc)
{
    const msgpack_object *o = c2p_map_get(m, key);
    *rc = 0;
    if (!o) {
        *rc = required ? c2i_fail(err, C2P_BAD_REQUEST, "%s: '%s' is required", m->path, key) : 0;
        return NULL;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        *rc = c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected an array of maps", m->path, key);
        return NULL;
    }
    return o;
}

/* A table of nwl floats, or NULL when absent and optional. *buf is the
 * caller's scratch of nwl floats. */
static int geo_table(c2p_map *m, const char *key, int required, uint32_t nwl, float *buf, const float **out,
                     c2p_err *err)
{
    *out = NULL;
    if (!c2p_map_get(m, key)) {
        return required ? c2i_fail(err, C2P_BAD_REQUEST, "%s: '%s' is required", m->path, key) : 0;
    }
    int rc = c2p_get_bin32(m, key, 1, nwl, 1, buf, 4, err);
    *out = rc ? NULL : buf;
    return rc;
}

/* The builder's error, as a BAD_REQUEST naming the request. */
static int geo_engine(int rc, const c2_error *ce, c2p_err *err)
{
    return rc ? c2i_fail(err, rc == C2_ENOMEM ? C2P_TOO_LARGE : C2P_BAD_REQUEST, "load_geometry: %s", ce->msg) : 0;
}

static int geo_materials(c2_geometry *g, c2p_map *top, uint32_t nwl, float *scratch, c2p_err *err)
{
    int rc;
    const msgpack_object *a = geo_array(top, "materials", 1, err, &rc);
    for (uint32_t i = 0; a && !rc && i < a->via.array.size; i++) {
        char path[64], name[C2P_NAME_MAX + 1] = "";
        snprintf(path, sizeof path, "geometry.materials[%u]", i);
        c2p_map m;
        double tau = 0;
        c2_material_desc d = {0};
        if ((rc = c2p_map_open(&m, &a->via.array.ptr[i], path, err)) ||
            (rc = c2p_get_str(&m, "name", 0, name, sizeof name, err)) ||
            (rc = geo_table(&m, "refractive_index", 1, nwl, scratch, &d.refractive_index, err)) ||
            (rc = geo_table(&m, "absorption_length", 1, nwl, scratch + nwl, &d.absorption_length, err)) ||
            (rc = geo_table(&m, "scattering_length", 1, nwl, scratch + 2 * nwl, &d.scattering_length, err)) ||
            (rc = geo_table(&m, "reemission_prob", 0, nwl, scratch + 3 * nwl, &d.reemission_prob, err)) ||
            (rc = geo_table(&m, "reemission_cdf", 0, nwl, scratch + 4 * nwl, &d.reemission_cdf, err)) ||
            (rc = c2p_get_f64(&m, "reemission_tau", 0, 0, 1e9, &tau, err)) || (rc = c2p_map_done(&m, err))) {
            break;
        }
        d.name = name;
        d.reemission_tau = (float)tau;
        c2_error ce = {0};
        rc = geo_engine(c2_geometry_add_material(g, &d, NULL, &ce), &ce, err);
    }
    return rc;
}

static int geo_surfaces(c2_geometry *g, c2p_map *top, uint32_t nwl, float *scratch, c2p_err *err)
{
    int rc;
    const msgpack_object *a = geo_array(top, "surfaces", 0, err, &rc);
    for (uint32_t i = 0; a && !rc && i < a->via.array.size; i++) {
        char path[64], name[C2P_NAME_MAX + 1] = "", model[16] = "default";
        snprintf(path, sizeof path, "geometry.surfaces[%u]", i);
        c2p_map m;
        double tau = 0;
        c2_surface_desc d = {0};
        if ((rc = c2p_map_open(&m, &a->via.array.ptr[i], path, err)) ||
            (rc = c2p_get_str(&m, "name", 0, name, sizeof name, err)) ||
            (rc = c2p_get_str(&m, "model", 0, model, sizeof model, err)) ||
            (rc = geo_table(&m, "detect", 0, nwl, scratch, &d.detect, err)) ||
            (rc = geo_table(&m, "absorb", 0, nwl, scratch + nwl, &d.absorb, err)) ||
            (rc = geo_table(&m, "reflect_diffuse", 0, nwl, scratch + 2 * nwl, &d.reflect_diffuse, err)) ||
            (rc = geo_table(&m, "reflect_specular", 0, nwl, scratch + 3 * nwl, &d.reflect_specular, err)) ||
            (rc = geo_table(&m, "reemission_prob", 0, nwl, scratch + 4 * nwl, &d.reemission_prob, err)) ||
            (rc = geo_table(&m, "reemission_cdf", 0, nwl, scratch + 5 * nwl, &d.reemission_cdf, err)) ||
            (rc = c2p_get_f64(&m, "reemission_tau", 0, 0, 1e9, &tau, err)) || (rc = c2p_map_done(&m, err))) {
            break;
        }
        if (strcmp(model, "default") && strcmp(model, "wls")) {
            rc = c2i_fail(err, C2P_BAD_REQUEST, "%s.model: '%s' is not \"default\" or \"wls\"", path, model);
            break;
        }
        d.name = name;
        d.model = strcmp(model, "wls") ? C2_SURFACE_DEFAULT : C2_SURFACE_WLS;
        d.reemission_tau = (float)tau;
        c2_error ce = {0};
        rc = geo_engine(c2_geometry_add_surface(g, &d, NULL, &ce), &ce, err);
    }
    return rc;
}

/* Mesh sizes are kept to size the solids' per-triangle arrays. */
static int geo_meshes(c2_geometry *g, c2p_map *top, uint32_t **ntris_out, uint32_t *nmeshes, c2p_err *err)
{
    int rc;
    const msgpack_object *a = geo_array(top, "meshes", 1, err, &rc);
    if (!a) {
        return rc;
    }
    uint32_t *ntris = calloc(a->via.array.size + 1, sizeof *ntris);
    if (!ntris) {
        return c2i_fail(err, C2P_TOO_LARGE, "geometry.meshes: no memory");
    }
    *ntris_out = ntris;
    *nmeshes = a->via.array.size;
    for (uint32_t i = 0; !rc && i < a->via.array.size; i++) {
        char path[64];
        snprintf(path, sizeof path, "geometry.meshes[%u]", i);
        c2p_map m;
        if ((rc = c2p_map_open(&m, &a->via.array.ptr[i], path, err))) {
            break;
        }
        const msgpack_object *v = c2p_map_get(&m, "vertices"), *t = c2p_map_get(&m, "triangles");
        if (!v || !t || v->type != MSGPACK_OBJECT_BIN || t->type != MSGPACK_OBJECT_BIN || v->via.bin.size % 12 ||
            t->via.bin.size % 12) {
            rc = c2i_fail(err, C2P_BAD_REQUEST, "%s: 'vertices' (bin f32 x3) and 'triangles' (bin u32 x3) required",
                          path);
            break;
        }
        uint32_t nv = v->via.bin.size / 12, nt = t->via.bin.size / 12;
        float *verts = malloc((size_t)nv * 12 + 1);
        uint32_t *tris = malloc((size_t)nt * 12 + 1);
        if (!verts || !tris) {
            rc = c2i_fail(err, C2P_TOO_LARGE, "%s: no memory", path);
        } else if (!(rc = c2p_get_bin32(&m, "vertices", 1, nv, 3, verts, 12, err)) &&
                   !(rc = c2p_get_bin32(&m, "triangles", 1, nt, 3, tris, 12, err)) && !(rc = c2p_map_done(&m, err))) {
            c2_error ce = {0};
            rc = geo_engine(c2_geometry_add_mesh(g, verts, nv, tris, nt, NULL, &ce), &ce, err);
            ntris[i] = nt;
        }
        free(verts);
        free(tris);
    }
    return rc;
}

static int geo_solids(c2_geometry *g, c2p_map *top, const uint32_t *ntris, uint32_t nmeshes, c2p_err *err)
{
    int rc;
    const msgpack_object *a = geo_array(top, "solids", 1, err, &rc);
    for (uint32_t i = 0; a && !rc && i < a->via.array.size; i++) {
        char path[64];
        snprintf(path, sizeof path, "geometry.solids[%u]", i);
        c2p_map m;
        uint64_t mesh = 0, inner = 0, outer = 0;
        int64_t surface = -1, channel = -1;
        float rot[9], shift[3];
        if ((rc = c2p_map_open(&m, &a->via.array.ptr[i], path, err)) ||
            (rc = c2p_get_u64(&m, "mesh", 1, 0, nmeshes ? nmeshes - 1 : 0, &mesh, err)) ||
            (rc = c2p_get_u64(&m, "inner", 1, 0, UINT16_MAX, &inner, err)) ||
            (rc = c2p_get_u64(&m, "outer", 1, 0, UINT16_MAX, &outer, err)) ||
            (rc = c2p_get_i64(&m, "surface", 0, -1, INT32_MAX, &surface, err)) ||
            (rc = c2p_get_i64(&m, "channel", 0, -1, INT32_MAX, &channel, err))) {
            break;
        }
        int has_rot = c2p_map_get(&m, "rot") != NULL, has_shift = c2p_map_get(&m, "shift") != NULL;
        if ((rc = c2p_get_bin32(&m, "rot", 0, 1, 9, rot, 36, err)) ||
            (rc = c2p_get_bin32(&m, "shift", 0, 1, 3, shift, 12, err))) {
            break;
        }
        c2_solid_desc d = {(uint32_t)mesh, (uint32_t)inner, (uint32_t)outer, (int32_t)surface, (int32_t)channel,
                           has_rot ? rot : NULL, has_shift ? shift : NULL};
        c2_error ce = {0};
        uint32_t solid = 0;
        if ((rc = geo_engine(c2_geometry_add_solid(g, &d, &solid, &ce), &ce, err))) {
            break;
        }
        /* optional per-triangle surfaces and channels (a photocathode on
         * part of a closed solid), applied in runs of equal values */
        int has_ts = c2p_map_get(&m, "triangle_surface") != NULL, has_tc = c2p_map_get(&m, "triangle_channel") != NULL;
        if (has_ts || has_tc) {
            uint32_t n = ntris[mesh];
            int32_t *ts = malloc((size_t)n * 4 + 4), *tc = malloc((size_t)n * 4 + 4);
            if (!ts || !tc) {
                rc = c2i_fail(err, C2P_TOO_LARGE, "%s: no memory", path);
            }
            for (uint32_t k = 0; !rc && k < n; k++) {
                ts[k] = (int32_t)surface;
                tc[k] = (int32_t)channel;
            }
            if (!rc && !(rc = c2p_get_bin32(&m, "triangle_surface", 0, n, 1, ts, 4, err)) &&
                !(rc = c2p_get_bin32(&m, "triangle_channel", 0, n, 1, tc, 4, err))) {
                for (uint32_t k = 0; !rc && k < n;) {
                    uint32_t e = k + 1;
                    while (e < n && ts[e] == ts[k] && tc[e] == tc[k]) {
                        e++;
                    }
                    rc = geo_engine(c2_geometry_set_triangle_surface(g, solid, k, e - k, ts[k], tc[k], &ce), &ce, err);
                    k = e;
                }
            }
            free(ts);
            free(tc);
        }
        if (!rc) {
            rc = c2p_map_done(&m, err);
        }
    }
    return rc;
}

int c2p_decode_geometry(const c2p_msg *msg, char name[C2P_NAME_MAX + 1], int *replace, c2_geometry **out,
                        c2_build_stats *stats, c2p_err *err)
{
    *out = NULL;
    *replace = 0;
    c2p_map req, top, wl;
    uint64_t nwl = 0;
    double wl_min = 0, wl_step = 0;
    int rc = c2p_map_open_body(&req, msg, "load_geometry", err);
    if (rc || (rc = c2p_get_str(&req, "name", 1, name, C2P_NAME_MAX + 1, err)) ||
        (rc = c2p_get_bool(&req, "replace", 0, replace, err)) ||
        (rc = c2p_map_open(&top, c2p_map_get(&req, "geometry"), "geometry", err)) || (rc = c2p_map_done(&req, err)) ||
        (rc = c2p_map_open(&wl, c2p_map_get(&top, "wavelengths"), "geometry.wavelengths", err)) ||
        (rc = c2p_get_f64(&wl, "min", 1, 1e-3, 1e6, &wl_min, err)) ||
        (rc = c2p_get_f64(&wl, "step", 1, 1e-6, 1e6, &wl_step, err)) ||
        (rc = c2p_get_u64(&wl, "n", 1, 2, C2_MAX_WAVELENGTHS, &nwl, err)) || (rc = c2p_map_done(&wl, err))) {
        return rc;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-')) {
            return c2i_fail(err, C2P_BAD_REQUEST, "load_geometry.name: '%s' may hold only A-Z a-z 0-9 _ . -", name);
        }
    }
    if (!name[0]) {
        return c2i_fail(err, C2P_BAD_REQUEST, "load_geometry.name: empty");
    }
    c2_error ce = {0};
    c2_geometry *g = c2_geometry_new((float)wl_min, (float)wl_step, (uint32_t)nwl, &ce);
    float *scratch = malloc(6 * nwl * sizeof(float));
    uint32_t *ntris = NULL, nmeshes = 0;
    if (!g || !scratch) {
        rc = g ? c2i_fail(err, C2P_TOO_LARGE, "load_geometry: no memory") : geo_engine(ce.code, &ce, err);
    }
    if (!rc && !(rc = geo_materials(g, &top, (uint32_t)nwl, scratch, err)) &&
        !(rc = geo_surfaces(g, &top, (uint32_t)nwl, scratch, err)) && !(rc = geo_meshes(g, &top, &ntris, &nmeshes, err)) &&
        !(rc = geo_solids(g, &top, ntris, nmeshes, err)) && !(rc = c2p_map_done(&top, err))) {
        rc = geo_engine(c2_geometry_build(g, stats, &ce), &ce, err);
    }
    free(scratch);
    free(ntris);
    if (rc) {
        c2_geometry_free(g);
        return rc;
    }
    *out = g;
    return 0;
}
