"""Build mamba-ssm's selective-scan CUDA extension on a GPU machine, lean enough for a short
device lease: fp32 only, sm_90 only, and the kernel's boolean switches pinned to what
Mamba uses (variable B and C, softplus, z), which cuts the template variants ~16x.

    python3 bench/gpu_build_mamba.py SRC_DIR BUILD_DIR   (SRC_DIR: an unpacked mamba-ssm sdist)

Afterwards `import selective_scan_cuda` works with BUILD_DIR on sys.path, and mamba_ssm (the
pure-Python part, with a minimal __init__) imports from SRC_DIR.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from torch.utils.cpp_extension import load

PIN = ("#include <stdexcept>\n#define PINNED_TRUE(COND, CONST_NAME, ...) [&] { if (!(COND)) "
       "throw std::runtime_error(#COND \" must hold in this reduced build\"); "
       "constexpr bool CONST_NAME = true; return __VA_ARGS__(); }()\n")


def patch(src: Path) -> list[str]:
    cs = src / "csrc" / "selective_scan"
    cpp = (cs / "selective_scan.cpp").read_text()
    # float input and float weights only: the half/bf16/complex instantiations are not built
    cpp = re.sub(r"#define DISPATCH_ITYPE_FLOAT_AND_HALF_AND_BF16\(ITYPE, NAME, \.\.\.\).*?\n\n",
                 "#define DISPATCH_ITYPE_FLOAT_AND_HALF_AND_BF16(ITYPE, NAME, ...) "
                 "TORCH_CHECK(ITYPE == at::ScalarType::Float, \"fp32-only build\"); "
                 "{ using input_t = float; __VA_ARGS__(); }\n\n", cpp, flags=re.S)
    cpp = re.sub(r"#define DISPATCH_WTYPE_FLOAT_AND_COMPLEX\(WTYPE, NAME, \.\.\.\).*?\n\n",
                 "#define DISPATCH_WTYPE_FLOAT_AND_COMPLEX(WTYPE, NAME, ...) "
                 "TORCH_CHECK(WTYPE == at::ScalarType::Float, \"real-A-only build\"); "
                 "{ using weight_t = float; __VA_ARGS__(); }\n\n", cpp, flags=re.S)
    (cs / "selective_scan.cpp").write_text(cpp)
    for name in ("selective_scan_fwd_kernel.cuh", "selective_scan_bwd_kernel.cuh"):
        text = (cs / name).read_text()
        for cond in ("params.is_variable_B", "params.is_variable_C", "params.delta_softplus",
                     "params.z_ptr != nullptr "):
            text = text.replace(f"BOOL_SWITCH({cond},", f"PINNED_TRUE({cond},")
        text = text.replace('#include "static_switch.h"', '#include "static_switch.h"\n' + PIN)
        (cs / name).write_text(text)
    fwd = (cs / "selective_scan_fwd_fp32.cu").read_text()
    fwd = "\n".join(ln for ln in fwd.splitlines() if "complex" not in ln)
    (cs / "selective_scan_fwd_fp32.cu").write_text(fwd + "\n")
    (src / "mamba_ssm" / "__init__.py").write_text('__version__ = "2.3.2.post1-fp32-sm90"\n')
    return [str(cs / f) for f in ("selective_scan.cpp", "selective_scan_fwd_fp32.cu",
                                  "selective_scan_bwd_fp32_real.cu")]


def main() -> None:
    src, build = Path(sys.argv[1]), Path(sys.argv[2])
    build.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    sources = patch(src)
    load(name="selective_scan_cuda", sources=sources, build_directory=str(build),
         extra_cflags=["-O3", "-std=c++17"],
         extra_cuda_cflags=["-O3", "-std=c++17", "--expt-relaxed-constexpr",
                            "--expt-extended-lambda", "--use_fast_math", "-lineinfo",
                            "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                            "-U__CUDA_NO_BFLOAT16_OPERATORS__",
                            "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                            "-gencode", "arch=compute_90,code=sm_90"],
         extra_include_paths=[str(src / "csrc" / "selective_scan")], verbose=True)
    print("built", sorted(p.name for p in build.glob("*.so")))


if __name__ == "__main__":
    main()
