/*
 * nng_packer.h: a msgpack_packer that writes straight into an nng_msg, for
 * the daemon and the client (the codec itself does not depend on NNG).
 * The message grows geometrically: nng_msg_append alone grows it to the
 * exact size each time, which made packing a 48 MB event quadratic.
 */
#ifndef C2P_NNG_PACKER_H
#define C2P_NNG_PACKER_H

#include <msgpack.h>
#include <nng/nng.h>

static inline int c2p_nng_write(void *data, const char *buf, size_t len)
{
    nng_msg *m = (nng_msg *)data;
    size_t need = nng_msg_len(m) + len;
    if (need > nng_msg_capacity(m) && nng_msg_reserve(m, need < 4096 ? 4096 : 2 * need) != 0) {
        return -1;
    }
    return nng_msg_append(m, buf, len) == 0 ? 0 : -1;
}

static inline void c2p_nng_packer_init(msgpack_packer *pk, nng_msg *msg) { msgpack_packer_init(pk, msg, c2p_nng_write); }

#endif
