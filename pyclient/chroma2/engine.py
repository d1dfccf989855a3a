"""The CPU engine in this process, without a daemon: the built-in detector
and the same physics, random numbers and Results as chroma2d's cpu backend.
For quick checks, tests and machines where no daemon runs."""
from ._lib import ffi, lib
from .errors import make_error
from .event import EventDescriptor, Result


class LocalEngine:
    """The built-in detector, built here (a second or two for the default
    5,000 PMTs), and c2_engine_run on it.

    detector: overrides of its parameters by name (npmts, radius,
    pmt_radius, detect_efficiency, absorption_length, scattering_length,
    ...); the daemon's --detector-pmts is npmts. threads: 0 for every CPU the process may use.
    """

    def __init__(self, threads=0, **detector):
        params = ffi.new("c2_detector_params *")
        lib.c2_detector_params_default(params)
        for k, v in detector.items():
            if k not in dict(ffi.typeof("c2_detector_params").fields):
                raise ValueError(f"no detector parameter {k!r}")
            setattr(params, k, v)
        err = ffi.new("c2_error *")
        g = lib.c2_detector_build(params, ffi.NULL, err)
        if g == ffi.NULL:
            raise make_error(err.code, ffi.string(err.msg).decode())
        self._g = ffi.gc(g, lib.c2_geometry_free)
        self.threads = threads

    @property
    def wavelengths(self):
        """The grid: (min, step, n) in nm."""
        return (lib.c2_geometry_wl_min(self._g), lib.c2_geometry_wl_step(self._g), lib.c2_geometry_nwl(self._g))

    def run(self, events):
        """Runs EventDescriptors (their geometry must be "default") and
        returns their Results in order."""
        events = list(events)
        for d in events:
            if not isinstance(d, EventDescriptor) or d.geometry != "default":
                raise ValueError("LocalEngine runs EventDescriptors on the built-in detector (geometry 'default')")
        keep = []
        cev = ffi.new("c2_event[]", len(events))
        nwl = lib.c2_geometry_nwl(self._g)
        for i, d in enumerate(events):
            if d.spectra is not None and d.spectra.shape[1] != nwl:
                raise ValueError(f"event {i}: spectra have {d.spectra.shape[1]} values, the grid has {nwl}")
            cev[i] = d.c_event(keep)[0][0]
        res = ffi.new("c2_event_result[]", len(events))
        err = ffi.new("c2_error *")
        rc = lib.c2_engine_run(self._g, cev, len(events), res, self.threads, err)
        if rc:
            raise make_error(rc, ffi.string(err.msg).decode())
        try:
            return [Result(res[i], d.event_id, want=d.want) for i, d in enumerate(events)]
        finally:
            for i in range(len(events)):
                lib.c2_event_result_free(ffi.addressof(res, i))
