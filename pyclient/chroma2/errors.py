"""Exceptions. Every error from the daemon is a RemoteError subclass named
after its stable protocol code (proto/PROTOCOL.md); local failures map onto
the built-in exception a Python user would try to catch."""
from ._lib import lib


class Chroma2Error(Exception):
    """Base of every chroma2 error: .code (the C or wire code), .message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class RemoteError(Chroma2Error):
    """The daemon refused or failed the request; .name is the wire name."""
    name = "REMOTE"


class ConnectionLost(Chroma2Error, ConnectionError):
    """The daemon went away (or was never there) while a request waited."""


class Timeout(Chroma2Error, TimeoutError):
    """No reply within the time asked for."""


class InvalidArgument(Chroma2Error, ValueError):
    """The C client refused an argument before sending anything."""


def _remote(name, doc):
    return type(name.title().replace("_", "") + "Error", (RemoteError,), {"name": name, "__doc__": doc})


_REMOTE = {
    lib.C2_REMOTE_MALFORMED: _remote("MALFORMED", "The message was not valid msgpack or broke a structural limit."),
    lib.C2_REMOTE_BAD_REQUEST: _remote("BAD_REQUEST", "A field was missing, unknown, mistyped or out of range."),
    lib.C2_REMOTE_VERSION: _remote("VERSION", "No protocol version in common with the daemon."),
    lib.C2_REMOTE_UNKNOWN_TYPE: _remote("UNKNOWN_TYPE", "The daemon does not know the request type."),
    lib.C2_REMOTE_TOO_LARGE: _remote("TOO_LARGE", "The message or event exceeds a daemon limit (see hello)."),
    lib.C2_REMOTE_BUSY: _remote("BUSY", "The daemon's queues are full; retry later."),
    lib.C2_REMOTE_NOT_FOUND: _remote("NOT_FOUND", "No such geometry, ticket or request."),
    lib.C2_REMOTE_DIGEST_MISMATCH: _remote("DIGEST_MISMATCH", "The geometry's digest differs from the one named."),
    lib.C2_REMOTE_DEADLINE: _remote("DEADLINE", "The event's deadline passed before it finished."),
    lib.C2_REMOTE_CANCELLED: _remote("CANCELLED", "The event was cancelled."),
    lib.C2_REMOTE_SHUTTING_DOWN: _remote("SHUTTING_DOWN", "The daemon is draining and takes no new events."),
    lib.C2_REMOTE_BACKEND: _remote("BACKEND", "The daemon's backend failed."),
    lib.C2_REMOTE_INTERNAL: _remote("INTERNAL", "A bug in the daemon; please report it."),
    lib.C2_REMOTE_EXISTS: _remote("EXISTS", "A geometry of that name is loaded (unload it, or replace=True)."),
}
globals().update({cls.__name__: cls for cls in _REMOTE.values()})
__all__ = ["Chroma2Error", "RemoteError", "ConnectionLost", "Timeout", "InvalidArgument"] + [
    cls.__name__ for cls in _REMOTE.values()]


def make_error(code, message):
    """The exception for a C client return code and its message."""
    if code in _REMOTE:
        return _REMOTE[code](code, message)
    if code == lib.C2_ETIMEDOUT:
        return Timeout(code, message)
    if code == lib.C2_EIO:
        return ConnectionLost(code, message)
    if code in (lib.C2_EINVAL, lib.C2_ERANGE, lib.C2_ELIMIT):
        return InvalidArgument(code, message)
    return Chroma2Error(code, message)
