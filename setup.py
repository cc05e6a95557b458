"""Build of fastloss's compiled core (fastloss._core).

The extension is the Cython binding fastloss/_core.pyx linked with the C
kernels in src_c/.  OpenMP flags are found by compiling and running a small
program with the compiler that will build the extension; a compiler without
OpenMP gets a one-thread build (fastloss.show_config() says so).

Environment knobs (all optional):
  FASTLOSS_DISABLE_OPENMP=1   build without OpenMP even if the compiler has it
  FASTLOSS_EXTRA_CFLAGS="..."  appended to the compile and link flags
                               (e.g. sanitizers; see .ci/run)
  FASTLOSS_ISA_LEVELS=a,b     build only these ISA levels of the kernels (the
                               baseline level is always built)
  FASTLOSS_NO_CLONES=1        only the baseline level (sanitizer builds)
Cross builds (tools/test_aarch64.sh, docs/development.md):
  FASTLOSS_NUMPY_INCLUDE=dir  NumPy's C headers of the target (default: the
                               building interpreter's numpy.get_include())
  FASTLOSS_PROBE_RUNNER="..."  command prefix that runs the probe programs
                               (an emulator: "qemu-aarch64 -L <sysroot>")

ISA levels (src_c/isa.h, SPEC section 9): the kernel sources ISA_SOURCES are
compiled once per level of the target architecture, each copy with its
level's flags and -DFL_ISA=<level>; src_c/dispatch.c picks one at import.
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

# compiled once, with the baseline flags
C_SOURCES = [
    "src_c/runtime.c",
    "src_c/dispatch.c",
]
# compiled once per ISA level (src_c/isa.h)
ISA_SOURCES = [
    "src_c/elementwise.c",
    "src_c/classwise.c",
    "src_c/ce_simd.c",
    "src_c/sign_labels.c",
    "src_c/rows.c",
    "src_c/convert.c",
    "src_c/isa_table.c",
]
# the levels of each target architecture, best first, the baseline last:
# (name, flags, a predefined macro the flags must turn on)
ISA_LEVELS = {
    "x86_64": [("avx512", ["-march=x86-64-v4"], "__AVX512BW__"),
               ("avx2", ["-march=x86-64-v3"], "__AVX2__"),
               ("sse2", [], "__SSE2__")],
    "aarch64": [("neon", [], "__ARM_NEON")],
    "other": [("generic", [], "__STDC__")],
}

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


def _compiles(compiler, source, cflags):
    """Whether `source` compiles (no link, no run: cross compilers too)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=list(cflags) + ["-Werror"])
        except Exception:
            return False
        return True


def _isa_levels(compiler, cflags):
    """The ISA levels to build for the compiler's target: those whose flags
    it accepts (and which define the level's macro), baseline last."""
    arch = ("x86_64" if _compiles(compiler, "#ifndef __x86_64__\n#error\n#endif\n", cflags)
            else "aarch64" if _compiles(compiler, "#ifndef __aarch64__\n#error\n#endif\n", cflags)
            else "other")
    levels = ISA_LEVELS[arch]
    want = os.environ.get("FASTLOSS_ISA_LEVELS", "")
    if os.environ.get("FASTLOSS_NO_CLONES", "") not in ("", "0"):
        want = levels[-1][0]
    if want:
        names = {w.strip() for w in want.split(",") if w.strip()}
        levels = [lv for lv in levels[:-1] if lv[0] in names] + [levels[-1]]
    ok = []
    for name, flags, macro in levels:
        test = f"#ifndef {macro}\n#error\n#endif\nint fl_probe_level;\n"
        if _compiles(compiler, test, cflags + flags):
            ok.append((name, flags))
        else:
            print(f"fastloss: the compiler cannot build the {name} level ({' '.join(flags)}); skipped")
    return arch, ok


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
        extra = shlex.split(os.environ.get("FASTLOSS_EXTRA_CFLAGS", ""))
        cflags += extra
        ldflags += extra
        arch, self.isa_levels = _isa_levels(cc, cflags)
        print(f"fastloss: ISA levels for {arch}: {', '.join(n for n, _ in self.isa_levels)}")
        built = [(f"FL_BUILT_{name.upper()}", "1") for name, _ in self.isa_levels]
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
            ext.extra_link_args = list(ext.extra_link_args or []) + ldflags
            ext.define_macros = list(ext.define_macros or []) + built
        self._write_build_info(cc, cflags, openmp)
        super().build_extensions()

    def build_extension(self, ext):
        # the kernels, once per ISA level, each copy in its own folder
        objects = []
        for name, flags in self.isa_levels:
            objects += self.compiler.compile(
                ISA_SOURCES,
                output_dir=os.path.join(self.build_temp, "isa", name),
                macros=list(ext.define_macros) + [("FL_ISA", name)],
                include_dirs=ext.include_dirs,
                extra_postargs=list(ext.extra_compile_args) + flags,
                depends=ext.depends,
            )
        ext.extra_objects = list(ext.extra_objects or []) + objects
        super().build_extension(ext)

    def _write_build_info(self, cc, cflags, openmp):
        info = {
            "compiler": _compiler_version(cc),
            "cflags": " ".join(cflags),
            "openmp_flag": openmp[0] if openmp else None,
            "python": sys.version.split()[0],
            "platform": sysconfig.get_platform(),
            "numpy_build": (numpy.__version__ if NUMPY_INCLUDE == numpy.get_include()
                            else "headers in " + NUMPY_INCLUDE),
            "isa_levels": [name for name, _ in self.isa_levels],
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
