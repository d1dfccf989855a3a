"""Photon history flags with Chroma's names and bit values (the values come
from the C header at build time). Module-level names as in chroma.event:
`from chroma2.flags import SURFACE_DETECT`."""
import enum

import numpy as np

from ._lib import lib

_NAMES = ["NO_HIT", "BULK_ABSORB", "SURFACE_DETECT", "SURFACE_ABSORB", "RAYLEIGH_SCATTER", "REFLECT_DIFFUSE",
          "REFLECT_SPECULAR", "SURFACE_REEMIT", "SURFACE_TRANSMIT", "BULK_REEMIT", "CHERENKOV", "SCINTILLATION",
          "MAX_STEPS", "NAN_ABORT"]

Flag = enum.IntFlag("Flag", {n: getattr(lib, "C2_" + n) for n in _NAMES})
Flag.__doc__ = "One photon's history bits; Flag(value) decodes a flags word."
globals().update({n: Flag[n] for n in _NAMES})

# A photon whose flags hold any of these has finished (engine.h).
FINISHED = Flag.NO_HIT | Flag.BULK_ABSORB | Flag.SURFACE_DETECT | Flag.SURFACE_ABSORB | Flag.MAX_STEPS | Flag.NAN_ABORT


def names(value):
    """['SURFACE_DETECT', 'RAYLEIGH_SCATTER'] for one flags word."""
    return [n for n in _NAMES if int(value) & Flag[n]]


def counts(flags):
    """{name: number of photons with that bit} over an array of flags."""
    flags = np.asarray(flags, dtype=np.uint32)
    return {n: int(np.count_nonzero(flags & np.uint32(Flag[n]))) for n in _NAMES}


__all__ = ["Flag", "FINISHED", "names", "counts"] + _NAMES
