"""A private chroma2d for notebooks, scripts and tests: started on a
temporary ipc socket, stopped (SIGTERM, drain) on stop() or at exit."""
import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ._lib import ffi, lib


def find_chroma2d():
    """The chroma2d binary: $CHROMA2D, the build this package was compiled
    against, then PATH."""
    bindir = ffi.string(lib.c2py_bindir).decode()
    for path in (os.environ.get("CHROMA2D"), bindir and os.path.join(bindir, "chroma2d"), shutil.which("chroma2d")):
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("chroma2d not found: set CHROMA2D, or put it on PATH (make install)")


class Daemon:
    """chroma2d as a child process.

    backend: "auto" (cuda when a GPU is usable, else cpu), "cpu" or "cuda".
    url: where it listens (None: a socket in a new temporary directory).
    options: more settings by their chroma2d names with _ for -, e.g.
    threads=2, detector_pmts=300, max_queued=64. The log is in .log_path.
    """

    def __init__(self, backend="auto", url=None, binary=None, startup_timeout=120.0, log_level="warn", **options):
        self._dir = tempfile.mkdtemp(prefix="chroma2d-")
        self.url = url or f"ipc://{self._dir}/chroma2d.sock"
        self.log_path = os.path.join(self._dir, "chroma2d.log")
        args = [binary or find_chroma2d(), "--listen", self.url, "--backend", backend, "--log-level", log_level]
        for k, v in options.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.args = args
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        atexit.register(self.stop)
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout):
        from .session import Session
        end = time.monotonic() + timeout
        with Session(self.url, timeout=1.0) as s:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"chroma2d exited with status {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if s.status()["ready"]:
                        return
                except (TimeoutError, ConnectionError):
                    pass
                if time.monotonic() > end:
                    raise TimeoutError(f"chroma2d not ready after {timeout} s:\n{self.log_tail()}")
                time.sleep(0.05)

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    @property
    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM (the daemon drains), then SIGKILL after timeout seconds.
        Returns the exit status. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        atexit.unregister(self.stop)
        shutil.rmtree(self._dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
