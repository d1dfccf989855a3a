/*
 * geometry_int.h: the geometry's internals, shared by the files of
 * libchroma2-engine (geometry.c, bvh.c, mesh.c, detector.c, the CPU engine)
 * and by the tests; not installed.
 */
#ifndef C2I_GEOMETRY_INT_H
#define C2I_GEOMETRY_INT_H

#include "chroma2/engine.h"
#include "../errors.h"
#include "../physics/geom.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct c2i_mesh {
    float *verts;
    uint32_t nverts;
    uint32_t *tris;
    uint32_t ntris;
} c2i_mesh;

typedef struct c2i_solid {
    uint32_t mesh;
    uint32_t inner, outer;
    int32_t surface, channel;
    double rot[9], shift[3];
    int32_t *tri_surface; /* per-triangle overrides, NULL until set */
    int32_t *tri_channel;
} c2i_solid;

struct c2_geometry {
    float wl_min, wl_step;
    uint32_t nwl;
    int built;

    /* what was added; growable arrays, owned */
    float *mat, *mat_tau;
    uint32_t nmat, cap_mat;
    float *surf, *surf_tau;
    uint32_t *surf_model;
    uint32_t nsurf, cap_surf;
    c2i_mesh *meshes;
    uint32_t nmeshes, cap_meshes;
    c2i_solid *solids;
    uint32_t nsolids, cap_solids;
    uint64_t total_tris;

    /* what c2_geometry_build made, BVH-ordered */
    float *verts;
    c2k_tri_info *tri;
    c2k_node *nodes;
    uint32_t ntri, nnodes, nchannels;
};


/* The physics' view of a built geometry (host pointers). */
c2k_geom c2i_geometry_view(const c2_geometry *g);

/* Builds a BVH over n triangles (9 floats each). On success *nodes (malloc'd,
 * *nnodes of them) and perm (caller's, n entries: leaf order -> input index)
 * are filled; depth and max_leaf go to stats. */
int c2i_bvh_build(const float *verts, uint32_t n, c2k_node **nodes, uint32_t *nnodes, uint32_t *perm,
                  c2_build_stats *stats, c2_error *err);

/* Triangle meshes of simple solids, malloc'd into m (free with
 * c2i_mesh_free); outward normals by the (v1 - v0) x (v2 - v0) rule. */
int c2i_mesh_icosphere(c2i_mesh *m, float radius, uint32_t subdivisions);
/* A closed hemisphere of radius r: the dome (triangles [0, 2 * segments *
 * rings - segments)) bulging along -z from a flat base disk in z = 0 (the
 * last segments triangles). */
int c2i_mesh_hemisphere(c2i_mesh *m, float radius, uint32_t segments, uint32_t rings);
int c2i_mesh_box(c2i_mesh *m, const float lo[3], const float hi[3]);
void c2i_mesh_free(c2i_mesh *m);

#ifdef __cplusplus
}
#endif
#endif
