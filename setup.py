"""Build of fastloss's compiled core (fastloss._core).

The extension is the Cython binding fastloss/_core.pyx linked with the C
kernels in src_c/.  OpenMP flags are found by compiling and running a small
program with the compiler that will build the extension; a compiler without
OpenMP gets a one-thread build (fastloss.show_config() says so).

Environment knobs (all optional):
  FASTLOSS_DISABLE_OPENMP=1   build without OpenMP even if the compiler has it
  FASTLOSS_EXTRA_CFLAGS="..."  appended to the compile and link flags
                               (e.g. sanitizers; see .ci/run)
Cross builds (tools/test_aarch64.sh, docs/development.md):
  FASTLOSS_NUMPY_INCLUDE=dir  NumPy's C headers of the target (default: the
                               building interpreter's numpy.get_include())
  FASTLOSS_PROBE_RUNNER="..."  command prefix that runs the probe programs
                               (an emulator: "qemu-aarch64 -L <sysroot>")
  FASTLOSS_NO_CLONES=1        one portable code path, no run-time ISA dispatch
"""
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_SOURCES = [
    "src_c/elementwise.c",
    "src_c/classwise.c",
    "src_c/ce_simd.c",
    "src_c/sign_labels.c",
    "src_c/runtime.c",
    "src_c/rows.c",
]

# No -ffast-math: it breaks the NaN/inf semantics fastloss promises.  errno
# and trapping are never used, so telling the compiler lets it vectorize.
BASE_CFLAGS = [
    "-O3",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fno-semantic-interposition",
    # no FMA contraction: every ISA clone and every mode (value, grad,
    # value_and_grad) rounds identically, so results do not depend on them
    "-ffp-contract=off",
    "-Wall",
    "-Wextra",
]

NUMPY_INCLUDE = os.environ.get("FASTLOSS_NUMPY_INCLUDE") or numpy.get_include()

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel num_threads(2) reduction(+:n)
    n += 1;
    printf("%d %d\n", n, _OPENMP);
    return n == 2 ? 0 : 1;
}
"""


def _probe(compiler, source, cflags, ldflags):
    """Compile, link and run `source`; return its stdout or None."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "probe")
            compiler.link_executable(objs, exe, extra_postargs=ldflags)
            runner = shlex.split(os.environ.get("FASTLOSS_PROBE_RUNNER", ""))
            res = subprocess.run(runner + [exe], capture_output=True, text=True, timeout=60)
        except Exception:
            return None
        return res.stdout.strip() if res.returncode == 0 else None


def _compiler_version(compiler):
    cc = compiler.compiler_so[0] if getattr(compiler, "compiler_so", None) else "cc"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].strip()
    except Exception:
        return cc


class BuildExt(build_ext):
    def build_extensions(self):
        cc = self.compiler
        cflags = list(BASE_CFLAGS)
        ldflags = []
        openmp = None
        if os.environ.get("FASTLOSS_DISABLE_OPENMP", "") not in ("", "0"):
            print("fastloss: OpenMP disabled by FASTLOSS_DISABLE_OPENMP")
        else:
            for flag in ("-fopenmp", "-qopenmp", "-Xpreprocessor -fopenmp"):
                fl = shlex.split(flag)
                out = _probe(cc, OPENMP_PROBE, fl, fl)
                if out:
                    openmp = (flag, out.split()[1])
                    cflags += fl
                    ldflags += fl
                    break
            if openmp is None:
                print("fastloss: WARNING: the compiler has no OpenMP; "
                      "building a one-thread fastloss")
        if openmp is None:
            # still honour `#pragma omp simd` (vectorized reductions)
            if _probe(cc, "int main(void){return 0;}", ["-fopenmp-simd"], []) is not None:
                cflags.append("-fopenmp-simd")
        if os.environ.get("FASTLOSS_NO_CLONES", "") not in ("", "0"):
            cflags.append("-DFL_NO_CLONES")
        extra = shlex.split(os.environ.get("FASTLOSS_EXTRA_CFLAGS", ""))
        cflags += extra
        ldflags += extra
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
            ext.extra_link_args = list(ext.extra_link_args or []) + ldflags
        self._write_build_info(cc, cflags, openmp)
        super().build_extensions()

    def _write_build_info(self, cc, cflags, openmp):
        info = {
            "compiler": _compiler_version(cc),
            "cflags": " ".join(cflags),
            "openmp_flag": openmp[0] if openmp else None,
            "python": sys.version.split()[0],
            "platform": sysconfig.get_platform(),
            "numpy_build": (numpy.__version__ if NUMPY_INCLUDE == numpy.get_include()
                            else "headers in " + NUMPY_INCLUDE),
        }
        text = ("# Generated by setup.py at build time; not committed.\n"
                f"BUILD_INFO = {info!r}\n")
        # into the build tree (wheels) and the source tree (in-place and
        # editable builds; the file is git-ignored)
        targets = [os.path.join(self.build_lib, "fastloss", "_build_info.py"),
                   os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "fastloss", "_build_info.py")]
        for path in targets:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)


extensions = [
    Extension(
        "fastloss._core",
        sources=["fastloss/_core.pyx"] + C_SOURCES,
        include_dirs=[NUMPY_INCLUDE, "src_c"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_21_API_VERSION")],
        depends=[os.path.join("src_c", f) for f in sorted(os.listdir("src_c"))
                 if f.endswith(".h")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3"},
    ),
    cmdclass={"build_ext": BuildExt},
)
