"""One event of a million photons from a point source off centre; writes a
PNG with its hit-time histogram and a map of the hit PMTs.

    python plot_hits.py [--url URL] [--out hits.png] [--photons N]
"""
import argparse
import os

import matplotlib
import numpy as np

import chroma2

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)


def main(url=None, out="hits.png", photons=1_000_000):
    with chroma2.Session(url) as s:
        ev = chroma2.EventDescriptor(sources=[chroma2.Source((2000.0, 0.0, 1000.0), photons, wavelength=420.0)],
                                     seed=7, want=("hits", "channels"))
        res = s.submit(ev).result()
    h, ch = res.hits, res.channels
    fig, (ax_t, ax_map) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    ax_t.hist(h["time"], bins=200, histtype="step", color="k")
    ax_t.set_xlabel("hit time [ns]")
    ax_t.set_ylabel("hits")
    ax_t.set_yscale("log")
    ax_t.set_title(f"{len(h)} hits from {res.counters['photons']} photons")
    # each PMT at the mean position of its hits, seen from the centre
    first = np.searchsorted(np.sort(h["channel"]), ch["channel"])
    order = np.argsort(h["channel"], kind="stable")
    pos = np.add.reduceat(h["pos"][order], first) / ch["count"][:, None]
    phi = np.degrees(np.arctan2(pos[:, 1], pos[:, 0]))
    cos_theta = pos[:, 2] / np.linalg.norm(pos, axis=1)
    sc = ax_map.scatter(phi, cos_theta, c=ch["count"], s=6, cmap="viridis", norm=matplotlib.colors.LogNorm())
    fig.colorbar(sc, ax=ax_map, label="hits per PMT")
    ax_map.set_xlabel("azimuth [deg]")
    ax_map.set_ylabel("cos(polar angle)")
    ax_map.set_title(f"{len(ch)} PMTs hit")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return os.path.abspath(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="chroma2d's URL")
    p.add_argument("--out", default="hits.png")
    p.add_argument("--photons", type=int, default=1_000_000)
    a = p.parse_args()
    print(f"wrote {main(a.url, a.out, a.photons)}")
