"""make demo: a private chroma2d with the best backend available, the
overlapping-events example against it, then the hit plot; stops the daemon.

    python demo.py OUT_DIR
"""
import os
import sys

import overlapping_events
import plot_hits

import chroma2


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with chroma2.Daemon(backend="auto") as d:
        print(f"started chroma2d (pid {d.proc.pid}) on {d.url}")
        overlapping_events.main(d.url)
        png = plot_hits.main(d.url, os.path.join(out_dir, "hits.png"))
        print(f"wrote {png}")
    print("stopped chroma2d")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-output")
