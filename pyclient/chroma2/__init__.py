"""chroma2: the Python client of chroma2d, the optical-photon Monte Carlo
service.

    import chroma2
    with chroma2.Session() as s:                      # $CHROMA2_URL or the service
        ev = chroma2.EventDescriptor(sources=[chroma2.Source((0, 0, 0), 100_000)], seed=1)
        res = s.submit(ev).result()                   # a concurrent.futures.Future
        print(res.nhits, chroma2.flags.counts(res.hits["flags"]))

Session.private() starts a chroma2d of its own; LocalEngine runs the CPU
engine in this process. Geometry (Material, Surface, Mesh, Solid, Geometry,
Detector) and mesh makers (chroma2.make) build detectors to load_geometry.
"""
from . import errors, flags, geometry, make
from .daemon import Daemon, find_chroma2d
from .engine import LocalEngine
from .errors import Chroma2Error, ConnectionLost, RemoteError, Timeout
from .geometry import Detector, Geometry, Material, Mesh, Solid, Surface, load_mesh
from .event import CHANNEL_DTYPE, HIT_DTYPE, EventDescriptor, Photons, Result, Source
from .session import DEFAULT_URL, EventFuture, Session

__version__ = "0.1.0"
__all__ = ["Session", "EventFuture", "EventDescriptor", "Photons", "Source", "Result", "Daemon", "LocalEngine",
           "find_chroma2d", "errors", "flags", "Chroma2Error", "RemoteError", "ConnectionLost", "Timeout",
           "HIT_DTYPE", "CHANNEL_DTYPE", "DEFAULT_URL", "geometry", "make", "Geometry", "Detector", "Material",
           "Surface", "Mesh", "Solid", "load_mesh"]
