"""Build (once, cached) and load the fused C kernel in csrc/selective_scan_cpu.c.

The library is compiled with the system C compiler into a per-user cache folder keyed by the
source, the flags and the CPU, and loaded through ctypes. If no compiler is found or the build
fails, `load()` returns None and callers use the pure-PyTorch path. Set MBERIL_NO_CPU_KERNEL=1
to force that fallback.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

_SRC = Path(__file__).with_name("csrc") / "selective_scan_cpu.c"
# -ffast-math (finite-math included) is what lets glibc hand gcc its vector expf (libmvec).
_FLAGS = ["-O3", "-ffast-math", "-fopenmp", "-fPIC", "-shared"]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
build_error: str | None = None

_P = ctypes.c_void_p
_I = ctypes.c_int
_SIGS = {
    "ss_fwd": [_I, _I, _I, _I] + [_P] * 8 + [_I, _P, _P, _I],
    "ss_bwd": [_I, _I, _I, _I] + [_P] * 8 + [_I] + [_P] * 9 + [_I],
    "mamba_step": [_I] * 6 + [_P] * 18 + [ctypes.c_float],
}


def _cpu_tag() -> str:
    # -march=native output must never be reused on another CPU model.
    try:
        info = Path("/proc/cpuinfo").read_text()
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
        model = next((ln for ln in info.splitlines() if ln.startswith("model name")), "")
    except OSError:
        flags = model = ""
    return platform.machine() + model + flags


def _cache_dir() -> Path:
    root = os.environ.get("MBERIL_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mberil_ros"
    )
    return Path(root)


def _build(cc: str, flags: list[str]) -> Path:
    key = hashlib.sha256(
        (_SRC.read_text() + cc + " ".join(flags) + _cpu_tag()).encode()
    ).hexdigest()[:16]
    out = _cache_dir() / f"selective_scan_cpu_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename: concurrent processes never see half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        subprocess.run(
            [cc, *flags, str(_SRC), "-o", tmp, "-lm"], check=True, capture_output=True, text=True
        )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load() -> ctypes.CDLL | None:
    """The kernel library, or None when it cannot be built here (reason in `build_error`)."""
    global _lib, _tried, build_error
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("MBERIL_NO_CPU_KERNEL") == "1":
            build_error = "disabled by MBERIL_NO_CPU_KERNEL=1"
            return None
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            build_error = "no C compiler found"
            return None
        errors = []
        # Prefer the native ISA (AVX2/AVX-512 vector expf); fall back to the generic one.
        for flags in (_FLAGS + ["-march=native"], _FLAGS):
            try:
                lib = ctypes.CDLL(str(_build(cc, flags)))
            except (OSError, subprocess.CalledProcessError) as exc:
                errors.append(getattr(exc, "stderr", None) or str(exc))
                continue
            for name, argtypes in _SIGS.items():
                fn = getattr(lib, name)
                fn.argtypes = argtypes
                fn.restype = None
            _lib = lib
            return _lib
        build_error = "; ".join(e.strip().splitlines()[-1] if e.strip() else "?" for e in errors)
        return None
