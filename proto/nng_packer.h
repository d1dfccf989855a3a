/*
 * nng_packer.h: a msgpack_packer that writes straight into an nng_msg, for
 * the daemon and the client (the codec itself does not depend on NNG).
 * The message grows geometrically: nng_msg_append alone grows it to the
 * exact size each time, which made packing a 48 MB event quadratic.
 *
 * A write that fails (no memory) must not leave a message with a hole in
 * it: the failure is marked with a byte in the message's header, which
 * fails every later write too, and c2p_nng_failed says so before the
 * message is sent (NNG's REQ and REP set the header themselves on send, so
 * it is free while packing).
 */
#ifndef C2P_NNG_PACKER_H
#define C2P_NNG_PACKER_H

#include <msgpack.h>
#include <nng/nng.h>

static inline int c2p_nng_failed(nng_msg *m) { return nng_msg_header_len(m) != 0; }

static inline int c2p_nng_write(void *data, const char *buf, size_t len)
{
    nng_msg *m = (nng_msg *)data;
    size_t need = nng_msg_len(m) + len;
    if (c2p_nng_failed(m) ||
        (need > nng_msg_capacity(m) && nng_msg_reserve(m, need < 4096 ? 4096 : 2 * need) != 0) ||
        nng_msg_append(m, buf, len) != 0) {
        if (!c2p_nng_failed(m)) {
            nng_msg_header_append(m, "", 1); /* within the header's own room: no allocation */
        }
        return -1;
    }
    return 0;
}

static inline void c2p_nng_packer_init(msgpack_packer *pk, nng_msg *msg) { msgpack_packer_init(pk, msg, c2p_nng_write); }

#endif
