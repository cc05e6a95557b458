#!/usr/bin/env python3
"""Interleaved A/B benchmark of two builds of fastloss (see docs/ab.md).

    python bench/ab.py --a main --b HEAD                # two revisions
    python bench/ab.py --a main --b-tree .              # the working tree as it is
    python bench/ab.py --self --a HEAD                  # one build against itself
    python bench/ab.py --a main --b HEAD --losses mse,cross_entropy --threads 1 --json r.json

Each build is exported (``git archive`` of a revision, or a copy of a source
tree with its uncommitted changes) into ``build/ab/<key>`` of the repository
this script lives in, and built there in place (``setup.py build_ext
--inplace``) with the current interpreter; builds are cached by key (commit or
content hash, Python ABI, build-affecting environment).  The developer's
``.venv`` and editable install are not touched.

Timing runs in two long-lived worker processes, one per build, each importing
fastloss from its own build directory.  The parent talks to them over
stdin/stdout (JSON lines) and strictly alternates: for every round and every
case, one worker times the case while the other waits, then the other one
(the first mover alternates with round and case), so machine drift hits both
builds alike and a 2-thread case never competes with the other build.

Per round and case the two workers take turns batch by batch (A B, B A, ...),
``repeat`` batches of ``number`` calls each (``number`` autoranged once so a
batch lasts ``--target`` seconds, the same for both builds); a build's time
of the round is its median batch.  Before handing over, a worker waits for
its OpenMP threads to stop spinning.  The table gives the
median time over rounds of each build, the ratio B/A as the MEDIAN OF THE
PER-ROUND RATIOS, and their interquartile range.  A row is flagged when B is
more than ``--tolerance`` (10 %) slower.  ``--self`` times one build against
itself in two processes: the largest |ratio - 1| is the method's own error,
which must stay within 5 % for the A/B to mean anything.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib

# ---------------------------------------------------------------- settings

# the 16 losses of the original table (SPEC section 5)
OLD_ELEMENTWISE = ("mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile", "poisson",
                   "tweedie", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                   "sigmoid_focal", "hinge", "squared_hinge")
OLD_CLASS = ("cross_entropy", "nll", "multi_margin")
OLD_LOSSES = OLD_ELEMENTWISE + OLD_CLASS
# the --quick rows of fastloss.bench
SIZES = (10**3, 10**5, 10**7)
CLASS_SHAPES = ((256, 10), (4096, 10), (1024, 1000), (8192, 1000), (64, 32000), (8, 50000))
THREADS = (1, 2)
OUTS = ("out", "fresh")
DTYPE = "float32"
METHOD = "value_and_grad"

TOLERANCE = 0.10        # a row is "slower" when B/A > 1 + TOLERANCE
SELF_TOLERANCE = 0.05   # --self: the method must read a build against itself within this

# timing plan (per worker, per case, per round)
# gap: expected seconds a worker waits after a batch for its OpenMP team to stop spinning
PLAN = dict(rounds=12, target=0.004, repeat=3, min_repeat=1, budget=0.15, gap=0.003,
            max_minutes=15.0)
OVERHEAD = 0.0004       # seconds of one pipe round trip to a worker

BUILD_ENV = ("FASTLOSS_DISABLE_OPENMP", "FASTLOSS_EXTRA_CFLAGS", "FASTLOSS_NO_CLONES",
             "CC", "CFLAGS", "LDFLAGS")


# ---------------------------------------------------------------- cases

def size_label(n):
    n = int(n)
    e = int(round(math.log10(n))) if n > 0 else 0
    return f"1e{e}" if n > 0 and 10**e == n else str(n)


def shape_label(shape):
    shape = tuple(shape)
    return size_label(shape[0]) if len(shape) == 1 else "x".join(str(d) for d in shape)


def case_key(case):
    return f"{case['loss']} {shape_label(case['shape'])} t{case['threads']} {case['out']}"


def build_cases(losses=OLD_LOSSES, sizes=SIZES, shapes=CLASS_SHAPES, threads=THREADS,
                outs=OUTS, extra=(), match=None, class_losses=OLD_CLASS):
    """The list of cases: dicts with loss, family, shape, threads, out, key.

    ``extra`` names more losses ("name" elementwise, "name:class" a class
    loss); ``match`` is a regular expression a case's key must contain."""
    names = []
    for spec in list(losses) + list(extra):
        name, _, fam = spec.partition(":")
        family = "class" if (fam == "class" or (not fam and name in class_losses)) \
            else "elementwise"
        if fam not in ("", "class", "elementwise"):
            raise ValueError(f"bad loss {spec!r}: NAME, NAME:class or NAME:elementwise")
        if (name, family) not in names:
            names.append((name, family))
    rx = re.compile(match) if match else None
    cases = []
    for name, family in names:
        shp = [(int(n),) for n in sizes] if family == "elementwise" \
            else [tuple(int(d) for d in s) for s in shapes]
        for shape in shp:
            for k in threads:
                for o in outs:
                    c = dict(loss=name, family=family, shape=list(shape), dtype=DTYPE,
                             threads=int(k), out=o)
                    c["key"] = case_key(c)
                    if rx is None or rx.search(c["key"]):
                        cases.append(c)
    return cases


# ---------------------------------------------------------------- statistics

def quantile(xs, q):
    """Quantile with linear interpolation (numpy's default method)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ratio_stats(times_a, times_b):
    """Per-round times of A and B (same length, paired by round) -> stats of
    the per-round ratios B/A: median, q25, q75, min, max, and the median
    times of each build."""
    if len(times_a) != len(times_b) or not times_a:
        raise ValueError("need the same positive number of rounds for A and B")
    ratios = [b / a for a, b in zip(times_a, times_b)]
    return dict(ratio=statistics.median(ratios), q25=quantile(ratios, 0.25),
                q75=quantile(ratios, 0.75), lo=min(ratios), hi=max(ratios),
                time_a=statistics.median(times_a), time_b=statistics.median(times_b),
                rounds=len(ratios))


def flag(st, tolerance=TOLERANCE):
    """'SLOWER' when B is more than `tolerance` slower than A (median ratio);
    '(noisy)' when the IQR of the ratios is wider than the tolerance."""
    if st["ratio"] > 1.0 + tolerance:
        return "SLOWER"
    if st["q75"] - st["q25"] > tolerance:
        return "(noisy)"
    return ""


def summarize(results, self_mode=False, tolerance=TOLERANCE, self_tolerance=SELF_TOLERANCE):
    """Summary dict of a list of results (dicts with key, status, stats)."""
    ok = [r for r in results if r["status"] == "ok"]
    missing = [r for r in results if r["status"] != "ok"]
    out = dict(cases=len(results), timed=len(ok), missing=len(missing))
    if not ok:
        return out
    ratios = [r["stats"]["ratio"] for r in ok]
    out["geomean"] = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    worst = max(ok, key=lambda r: r["stats"]["ratio"])
    out["worst"] = (worst["key"], worst["stats"]["ratio"])
    out["slower"] = [r["key"] for r in ok if r["stats"]["ratio"] > 1.0 + tolerance]
    dev = max(ok, key=lambda r: abs(r["stats"]["ratio"] - 1.0))
    out["max_dev"] = (dev["key"], abs(dev["stats"]["ratio"] - 1.0))
    if self_mode:
        out["self_ok"] = out["max_dev"][1] <= self_tolerance
    return out


def _fmt_time(t):
    if t is None or not math.isfinite(t):
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f}us"
    if t < 1.0:
        return f"{t * 1e3:.3f}ms"
    return f"{t:.3f}s"


def format_table(results, tolerance=TOLERANCE):
    """The report table (a list of lines); missing cases are listed as such."""
    head = (f"{'case':<44} {'A':>10} {'B':>10} {'B/A':>6} {'IQR':>13} {'min-max':>13}  flag")
    lines = [head, "-" * len(head)]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['key']:<44} {r['status']}")
            continue
        st = r["stats"]
        notes = [flag(st, tolerance)] + list(r.get("notes", ()))
        lines.append(f"{r['key']:<44} {_fmt_time(st['time_a']):>10} {_fmt_time(st['time_b']):>10}"
                     f" {st['ratio']:6.3f} {st['q25']:6.3f}-{st['q75']:<6.3f}"
                     f" {st['lo']:6.3f}-{st['hi']:<6.3f}  {' '.join(n for n in notes if n)}")
    return lines


def format_summary(summ, self_mode=False, tolerance=TOLERANCE, self_tolerance=SELF_TOLERANCE):
    if not summ.get("timed"):
        return f"no case timed ({summ.get('missing', 0)} missing)"
    key, dev = summ["max_dev"]
    wkey, wr = summ["worst"]
    s = (f"{summ['timed']} cases timed, {summ['missing']} missing; geomean B/A "
         f"{summ['geomean']:.3f}; worst B/A {wr:.3f} ({wkey}); max |B/A-1| "
         f"{dev * 100:.1f}% ({key})")
    if self_mode:
        s += (f"\nself-A/B spread: max |ratio-1| = {dev * 100:.1f}% "
              f"({'within' if summ['self_ok'] else 'OUTSIDE'} {self_tolerance * 100:.0f}%)")
    else:
        n = len(summ["slower"])
        s += (f"\n{n} case(s) more than {tolerance * 100:.0f}% slower in B"
              + (": " + ", ".join(summ["slower"]) if n else ""))
    return s


def case_status(resp_a, resp_b):
    """'ok' or the reason a case cannot be compared, from the two workers'
    answers to 'prepare'."""
    bad = []
    for tag, resp in (("A", resp_a), ("B", resp_b)):
        if resp.get("status") == "missing":
            bad.append(f"missing in {tag}: {resp.get('reason', '')}".rstrip(": "))
        elif resp.get("status") != "ok":
            bad.append(f"error in {tag}: {resp.get('error', '?')}")
    return "; ".join(bad) if bad else "ok"


def plan_case(cal_a, cal_b, plan):
    """Batch size and repeats of a case from both calibrations: the same
    `number` for both builds, repeats capped by the per-case budget."""
    number = max(cal_a["number"], cal_b["number"])
    per_call = max(cal_a["per_call"], cal_b["per_call"])
    batch = number * per_call
    repeat = int(min(plan["repeat"], max(plan["min_repeat"],
                                         math.floor(plan["budget"] / max(batch, 1e-9)))))
    # +1: the warm-up call; one pipe round trip (and gap) per batch
    cost = (repeat * number + 1) * per_call + repeat * (OVERHEAD + plan["gap"])
    return dict(number=number, repeat=repeat, cost=cost)


def estimate_seconds(plans, rounds, n_workers=2):
    return sum(p["cost"] for p in plans) * rounds * n_workers


# ---------------------------------------------------------------- builds

def _git(repo, *args, **kw):
    return subprocess.run(["git", "-C", repo] + list(args), check=True, capture_output=True,
                          **kw).stdout


def repo_root():
    here = os.path.dirname(os.path.abspath(__file__))
    return _git(here, "rev-parse", "--show-toplevel", text=True).strip()


def _env_key():
    vals = [(k, os.environ[k]) for k in BUILD_ENV if os.environ.get(k)]
    if not vals:
        return ""
    return "-env" + hashlib.sha256(repr(vals).encode()).hexdigest()[:8]


def _tree_files(tree):
    try:
        out = _git(tree, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        files = [f for f in out.decode().split("\0") if f]
    except (subprocess.CalledProcessError, FileNotFoundError):
        files = []
        skip_dirs = {".git", "build", ".venv", "__pycache__", "dist"}
        for root, dirs, names in os.walk(tree):
            dirs[:] = [d for d in dirs if d not in skip_dirs and not d.endswith(".egg-info")]
            for n in names:
                if not n.endswith((".so", ".o", ".pyc")):
                    files.append(os.path.relpath(os.path.join(root, n), tree))
    return sorted(f for f in files if os.path.isfile(os.path.join(tree, f)))


def tree_digest(tree, files):
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0")
        with open(os.path.join(tree, f), "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def _build_in(dest, log):
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace"]
    with open(log, "w") as fh:
        res = subprocess.run(cmd, cwd=dest, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        with open(log) as fh:
            tail = fh.read()[-3000:]
        raise RuntimeError(f"build in {dest} failed (log {log}):\n{tail}")


def prepare_build(build_root, rev=None, tree=None, repo=None, quiet=False):
    """Export + build one side; returns (directory, description).  Cached:
    a directory with a '.ab-ok' stamp is reused."""
    repo = repo or repo_root()
    tag = sys.implementation.cache_tag + _env_key()
    if rev is not None:
        commit = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}", text=True).strip()
        key = f"{commit[:12]}-{tag}"
        desc = f"{rev} = {commit[:12]}"
        files = None
    else:
        tree = os.path.abspath(tree)
        files = _tree_files(tree)
        digest = tree_digest(tree, files)
        key = f"tree-{digest[:12]}-{tag}"
        desc = f"tree {tree} (content {digest[:12]})"
    dest = os.path.join(build_root, key)
    stamp = os.path.join(dest, ".ab-ok")
    if os.path.exists(stamp):
        return dest, desc + " [cached build]"
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    if rev is not None:
        data = _git(repo, "archive", "--format=tar", commit)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:
                tf.extractall(dest)
    else:
        for f in files:
            os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
            shutil.copy2(os.path.join(tree, f), os.path.join(dest, f))
    if not quiet:
        print(f"building {desc} in {dest} ...", flush=True)
    t0 = time.time()
    try:
        _build_in(dest, os.path.join(dest, "ab-build.log"))
    except Exception:
        # keep the log, drop the half-built tree's stamp (there is none)
        raise
    with open(stamp, "w") as fh:
        fh.write(f"{desc}\nbuilt in {time.time() - t0:.0f}s by {sys.executable}\n")
    return dest, desc + f" [built in {time.time() - t0:.0f}s]"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- worker side

def _fallback_inputs(np, name, family, shape, dtype, rng):
    """Typical inputs when the build has no fastloss._samples."""
    shape = tuple(shape)
    if family == "class":
        z = rng.standard_normal(shape) * 3.0
        if name == "nll":
            m = z.max(axis=-1, keepdims=True)
            z = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
        y = rng.integers(0, shape[-1], size=shape[:-1], dtype=np.int64)
        return z.astype(dtype), y, {}
    p = rng.standard_normal(shape)
    if name == "binary_cross_entropy":
        p = rng.uniform(0.001, 0.999, shape)
        t = (rng.random(shape) < 0.5).astype(np.float64)
    elif name in ("binary_cross_entropy_with_logits", "sigmoid_focal"):
        p = p * 3.0
        t = (rng.random(shape) < 0.5).astype(np.float64)
    elif name in ("hinge", "squared_hinge"):
        t = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    elif name in ("poisson", "tweedie"):
        t = rng.poisson(1.0, shape).astype(np.float64)
    else:
        t = rng.standard_normal(shape)
    return p.astype(dtype), t.astype(dtype), {}


class _Worker:
    def __init__(self, np, fl, seed):
        self.np, self.fl, self.seed = np, fl, seed
        self.inputs = {}      # (loss, shape) -> (y_pred, y_true, kwargs, out buffer)
        self.calls = {}       # case key -> callable
        self.make_inputs = None
        import importlib
        import os
        here = os.path.dirname(getattr(fl, "__file__", "") or "")
        for mod in ("_samples", "_registry"):          # older, newer builds
            if not os.path.exists(os.path.join(here, mod + ".py")):
                continue      # only the build's own module (not an installed one)
            try:
                self.make_inputs = importlib.import_module("fastloss." + mod).make_inputs
                break
            except (ImportError, AttributeError):
                continue

    def _inputs(self, case):
        np = self.np
        k = (case["loss"], tuple(case["shape"]))
        if k not in self.inputs:
            # a seed per (loss, shape): the same data in both builds, whatever the order
            rng = np.random.default_rng([self.seed, zlib.crc32(case["loss"].encode())]
                                        + list(case["shape"]))
            dtype = np.dtype(case["dtype"])
            got = None
            if self.make_inputs is not None:
                try:
                    got = self.make_inputs(case["loss"], tuple(case["shape"]), dtype, rng)
                except KeyError:         # a loss the build's sampler table lacks
                    got = None
            if got is None:
                got = _fallback_inputs(np, case["loss"], case["family"], case["shape"],
                                       dtype, rng)
            p, t, kw = got
            self.inputs[k] = (p, t, kw, np.empty_like(p))
        return self.inputs[k]

    def prepare(self, case):
        fl, np = self.fl, self.np
        loss = getattr(fl, "losses", {}).get(case["loss"])
        if loss is None:
            return dict(status="missing", reason=f"no loss {case['loss']!r}")
        method = getattr(loss, METHOD, None)
        if method is None:
            return dict(status="missing", reason=f"no {METHOD}")
        p, t, kw, g = self._inputs(case)
        k = case["threads"]
        if case["out"] == "out":
            def call():
                return method(p, t, out=g, n_threads=k, **kw)
        else:
            def call():
                return method(p, t, n_threads=k, **kw)
        try:
            v, _ = call()
        except TypeError as e:           # e.g. a build without out= / n_threads=
            return dict(status="missing", reason=f"{type(e).__name__}: {e}")
        self.calls[case["key"]] = call
        ck = zlib.crc32(np.ascontiguousarray(p).view(np.uint8).reshape(-1))
        ck = zlib.crc32(np.ascontiguousarray(t).view(np.uint8).reshape(-1), ck)
        return dict(status="ok", value=float(v), checksum=ck)

    @staticmethod
    def _batch(f, number):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        return time.perf_counter() - t0

    def calibrate(self, key, target):
        """Batch size for `target` seconds.  The per-call time is the MINIMUM
        of several estimates, so one stall (a descheduled thread on a busy
        machine) does not inflate the plan."""
        import gc
        f = self.calls[key]
        gc.disable()
        try:
            f()
            per_call = min(self._batch(f, 1) for _ in range(3))
            number = 1
            while number < 1 << 22:
                number = max(1, int(math.ceil(target / max(per_call, 1e-9))))
                t = self._batch(f, number) / number
                if t >= per_call * 0.8 or number == 1:
                    per_call = min(per_call, t)
                    break
                per_call = t                 # first calls were slow (cold): redo
        finally:
            gc.enable()
        number = max(1, int(math.ceil(target / max(per_call, 1e-9)))) \
            if per_call < target else 1
        return dict(status="ok", number=number, per_call=per_call, settle=self.settle())

    def time(self, key, number, repeat=1, warm=True):
        import gc
        f = self.calls[key]
        gc.disable()
        try:
            if warm:
                f()                      # warm-up (caches, the thread team)
            times = [self._batch(f, number) / number for _ in range(repeat)]
        finally:
            gc.enable()
        return dict(status="ok", times=times, settle=self.settle())

    @staticmethod
    def settle(limit=0.05, tick=0.001):
        """Wait until this process's idle OpenMP threads stop spinning (libgomp
        spins a few ms after a parallel region before it sleeps), so that they
        do not take a core from the other build's next batch.  Returns the
        seconds waited."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < limit:
            c0, w0 = time.process_time(), time.perf_counter()
            time.sleep(tick)
            if time.process_time() - c0 < 0.3 * (time.perf_counter() - w0):
                break
        return time.perf_counter() - t0


def worker_main(build_dir, expect_file, seed):
    # the protocol owns the original stdout; anything else printed (Python or
    # C) goes to stderr
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, build_dir)
    import numpy as np
    import fastloss as fl
    got = os.path.realpath(fl.__file__)
    want = os.path.realpath(os.path.join(build_dir, "fastloss", "__init__.py"))
    if got != want:
        proto.write(json.dumps(dict(status="error", error=f"imported {got}, expected {want}"))
                    + "\n")
        return 2
    try:
        cfg = fl.show_config(print_=False)
    except Exception as e:       # an old build without show_config(print_=)
        cfg = {"error": repr(e)}
    w = _Worker(np, fl, seed)
    proto.write(json.dumps(dict(status="ok", file=got, config=cfg,
                                losses=sorted(getattr(fl, "losses", {})),
                                samples=w.make_inputs is not None), default=str) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "quit":
                break
            elif op == "prepare":
                resp = w.prepare(req["case"])
            elif op == "calibrate":
                resp = w.calibrate(req["key"], req["target"])
            elif op == "time":
                resp = w.time(req["key"], req["number"], req.get("repeat", 1),
                              req.get("warm", True))
            elif op == "drop":
                w.calls.clear()
                w.inputs.clear()
                resp = dict(status="ok")
            else:
                resp = dict(status="error", error=f"unknown op {op!r}")
        except Exception as e:
            resp = dict(status="error", error=f"{type(e).__name__}: {e}")
        proto.write(json.dumps(resp) + "\n")
    return 0


# ---------------------------------------------------------------- parent side

class WorkerProc:
    """A worker subprocess importing fastloss from `build_dir`."""

    def __init__(self, name, build_dir, seed, log_dir):
        self.name = name
        self.log = open(os.path.join(log_dir, f"worker-{name}.log"), "w")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", build_dir,
               "--seed", str(seed)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, cwd=build_dir)
        self.hello = self._read()
        if self.hello.get("status") != "ok":
            raise RuntimeError(f"worker {name}: {self.hello.get('error')}")

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            with open(self.log.name) as fh:
                tail = fh.read()[-3000:]
            raise RuntimeError(f"worker {self.name} died (rc={self.proc.poll()}):\n{tail}")
        return json.loads(line)

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps(dict(op="quit")) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.log.close()


def _config_line(cfg):
    keys = ("simd", "simd_isa", "openmp", "openmp_version", "threads", "losses",
            "compiler")
    return ", ".join(f"{k}={cfg.get(k)}" for k in keys if k in cfg) or repr(cfg)


def run_ab(dir_a, dir_b, cases, plan, seed=0, log_dir=None, progress=print,
           self_mode=False):
    """Time `cases` in one worker per build directory, interleaved; returns
    (header dict, list of results)."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="fastloss-ab-")
    os.makedirs(log_dir, exist_ok=True)
    wa = WorkerProc("A", dir_a, seed, log_dir)
    try:
        wb = WorkerProc("B", dir_b, seed, log_dir)
    except Exception:
        wa.close()
        raise
    workers = (wa, wb)
    header = dict(A=wa.hello, B=wb.hello, cpu=cpu_model(), log_dir=log_dir)
    results = []
    try:
        t0 = time.time()
        # calibration round: inputs, a first call, batch sizes
        live = []
        for case in cases:
            ra = wa.ask(op="prepare", case=case)
            rb = wb.ask(op="prepare", case=case)
            res = dict(key=case["key"], case=case, status=case_status(ra, rb), notes=[])
            results.append(res)
            if res["status"] != "ok":
                continue
            if ra["checksum"] != rb["checksum"]:
                res["notes"].append("data-differ")
            va, vb = ra["value"], rb["value"]
            if not (va == vb or abs(va - vb) <= 1e-4 * max(abs(va), abs(vb))):
                res["notes"].append(f"value-differs({va:.6g} vs {vb:.6g})")
            ca = wa.ask(op="calibrate", key=case["key"], target=plan["target"])
            cb = wb.ask(op="calibrate", key=case["key"], target=plan["target"])
            if ca["status"] != "ok" or cb["status"] != "ok":
                res["status"] = case_status(ca, cb)
                continue
            res["plan"] = plan_case(ca, cb, plan)
            res["times_a"], res["times_b"], res["batches_a"], res["batches_b"] = [], [], [], []
            live.append(res)
        est = estimate_seconds([r["plan"] for r in live], plan["rounds"])
        limit = plan["max_minutes"] * 60
        if est > limit:
            # shrink the repeats of the costliest cases until the run fits
            for r in sorted(live, key=lambda r: -r["plan"]["cost"]):
                p = r["plan"]
                while p["repeat"] > 1 and est > limit:
                    per_call = (p["cost"] - p["repeat"] * (OVERHEAD + plan["gap"])) / (
                        p["repeat"] * p["number"] + 1)
                    p["repeat"] -= 1
                    p["cost"] -= p["number"] * per_call + OVERHEAD + plan["gap"]
                    est = estimate_seconds([q["plan"] for q in live], plan["rounds"])
        header["estimate_s"] = est
        progress(f"calibrated {len(live)} of {len(cases)} cases in {time.time() - t0:.0f}s; "
                 f"estimated timing: {est / 60:.1f} min ({plan['rounds']} rounds)"
                 + (f"  [over the {plan['max_minutes']:.0f} min limit]" if est > limit else ""))
        t1 = time.time()
        loads = header["loadavg"] = []      # 1-minute load average after each round
        for rnd in range(plan["rounds"]):
            for i, res in enumerate(live):
                got = [[], []]
                for j in range(res["plan"]["repeat"]):
                    # A B | B A | A B ...: batch by batch, the first mover
                    # alternating with the batch, the case and the round
                    order = (0, 1) if (rnd + i + j) % 2 == 0 else (1, 0)
                    for w in order:
                        resp = workers[w].ask(op="time", key=res["key"],
                                              number=res["plan"]["number"], repeat=1,
                                              warm=(j == 0))
                        if resp["status"] != "ok":
                            raise RuntimeError(f"{res['key']} in {'AB'[w]}: "
                                               f"{resp.get('error')}")
                        got[w] += resp["times"]
                res["batches_a"].append(got[0])
                res["batches_b"].append(got[1])
                res["times_a"].append(statistics.median(got[0]))
                res["times_b"].append(statistics.median(got[1]))
            el = time.time() - t1
            eta = el / (rnd + 1) * (plan["rounds"] - rnd - 1)
            done = [r for r in live if r["times_a"]]
            cur = [ratio_stats(r["times_a"], r["times_b"])["ratio"] for r in done]
            dev = max((abs(x - 1) for x in cur), default=0.0)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            loads.append(load)
            progress(f"round {rnd + 1}/{plan['rounds']}: {el:.0f}s elapsed, ~{eta:.0f}s left, "
                     f"max |B/A-1| so far {dev * 100:.1f}%, load {load:.2f}")
        header["timing_s"] = time.time() - t1
        for res in live:
            res["stats"] = ratio_stats(res["times_a"], res["times_b"])
    finally:
        for w in workers:
            w.close()
    return header, results


# ---------------------------------------------------------------- CLI

def _csv(conv=str):
    def parse(text):
        return [conv(x) for x in text.split(",") if x.strip()]
    return parse


def _size(text):
    return int(float(text))


def _shape(text):
    try:
        n, c = text.lower().split("x")
        return (int(float(n)), int(float(c)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: NxC such as 4096x10")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="bench/ab.py", description="Interleaved A/B benchmark of two fastloss builds "
        "(docs/ab.md).")
    ga = ap.add_mutually_exclusive_group()
    ga.add_argument("--a", metavar="REV", help="build A: a git revision of this repository")
    ga.add_argument("--a-tree", metavar="DIR", help="build A: a source tree, as it is")
    gb = ap.add_mutually_exclusive_group()
    gb.add_argument("--b", metavar="REV", help="build B: a git revision")
    gb.add_argument("--b-tree", metavar="DIR",
                    help="build B: a source tree as it is (uncommitted changes included)")
    ap.add_argument("--self", dest="self_mode", action="store_true",
                    help="time build A against itself (two processes): the method's spread")
    ap.add_argument("--losses", type=_csv(), default=list(OLD_LOSSES),
                    help="losses to time (default: the 16 original losses)")
    ap.add_argument("--extra", type=_csv(), default=[], metavar="NAME[:class],...",
                    help="more losses (elementwise unless ':class')")
    ap.add_argument("--sizes", type=_csv(_size), default=list(SIZES),
                    help="elementwise sizes (default 1e3,1e5,1e7)")
    ap.add_argument("--shapes", type=_csv(_shape), default=list(CLASS_SHAPES), metavar="NxC,...",
                    help="class-loss shapes (default the --quick shapes of fastloss.bench)")
    ap.add_argument("--threads", type=_csv(int), default=list(THREADS), help="default 1,2")
    ap.add_argument("--outs", type=_csv(), default=list(OUTS), help="out and/or fresh")
    ap.add_argument("--match", default=None, metavar="REGEX",
                    help="only the cases whose key ('mse 1e7 t2 out') matches")
    ap.add_argument("--rounds", type=int, default=PLAN["rounds"])
    ap.add_argument("--target", type=float, default=PLAN["target"],
                    help="seconds of one timed batch (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=PLAN["repeat"],
                    help="batches per case, worker and round (median taken)")
    ap.add_argument("--budget", type=float, default=PLAN["budget"],
                    help="seconds per case, worker and round that caps the repeats")
    ap.add_argument("--max-minutes", type=float, default=PLAN["max_minutes"],
                    help="repeats are cut until the estimate fits (default %(default)s)")
    ap.add_argument("--tolerance", type=float, default=TOLERANCE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build-dir", default=None, help="default <repo>/build/ab")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the raw numbers")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is None and not args.list:
        if args.a is None and args.a_tree is None:
            ap.error("give build A: --a REV or --a-tree DIR")
        if args.self_mode and (args.b or args.b_tree):
            ap.error("--self times A against itself: no --b/--b-tree")
        if not args.self_mode and args.b is None and args.b_tree is None:
            ap.error("give build B (--b REV or --b-tree DIR), or --self")
    for o in args.outs:
        if o not in OUTS:
            ap.error(f"--outs: {o!r} is not one of {', '.join(OUTS)}")
    if args.rounds < 1 or args.repeat < 1:
        ap.error("--rounds and --repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker, None, args.seed)
    cases = build_cases(args.losses, args.sizes, args.shapes, args.threads, args.outs,
                        args.extra, args.match)
    if args.list:
        for c in cases:
            print(c["key"])
        print(f"{len(cases)} cases")
        return 0
    if not cases:
        print("no cases selected", file=sys.stderr)
        return 2
    plan = dict(PLAN, rounds=args.rounds, target=args.target, repeat=args.repeat,
                budget=args.budget, max_minutes=args.max_minutes)
    repo = repo_root()
    build_root = args.build_dir or os.path.join(repo, "build", "ab")
    os.makedirs(build_root, exist_ok=True)
    dir_a, desc_a = prepare_build(build_root, rev=args.a, tree=args.a_tree, repo=repo)
    if args.self_mode:
        dir_b, desc_b = dir_a, desc_a + " (self: second process)"
    else:
        dir_b, desc_b = prepare_build(build_root, rev=args.b, tree=args.b_tree, repo=repo)
    upper = len(cases) * 2 * plan["rounds"] * (plan["budget"] + plan["repeat"] * (
        OVERHEAD + plan["gap"]))
    print(f"{len(cases)} cases x {plan['rounds']} rounds x 2 builds: at most "
          f"~{upper / 60:.0f} min by the per-case budget (plus calibration); "
          f"the estimate follows calibration", flush=True)

    def progress(msg):
        print(msg, flush=True)

    log_dir = os.path.join(build_root, "logs")
    header, results = run_ab(dir_a, dir_b, cases, plan, seed=args.seed, log_dir=log_dir,
                             progress=progress, self_mode=args.self_mode)
    summ = summarize(results, self_mode=args.self_mode, tolerance=args.tolerance)
    print()
    print(f"fastloss A/B ({'self' if args.self_mode else 'A vs B'}), {METHOD}, {DTYPE}, "
          f"{plan['rounds']} rounds, interleaved per case")
    print(f"cpu: {header['cpu']}, {os.cpu_count()} CPUs; python {platform.python_version()}")
    for tag, desc in (("A", desc_a), ("B", desc_b)):
        h = header[tag]
        print(f"{tag}: {desc}\n   {h['file']}\n   {_config_line(h['config'])}")
    if header["A"]["config"].get("cflags") != header["B"]["config"].get("cflags"):
        print("note: A and B were compiled with different flags")
    loads = header.get("loadavg") or [float("nan")]
    print(f"timing took {header.get('timing_s', 0) / 60:.1f} min "
          f"(estimated {header.get('estimate_s', 0) / 60:.1f}); 1-min load average during "
          f"the rounds {min(loads):.2f}-{max(loads):.2f} (2 = both cores busy)")
    print("times: median over rounds of the median batch; B/A: median of per-round ratios; "
          f"IQR and min-max of those ratios; SLOWER = B/A > {1 + args.tolerance:.2f}")
    print()
    for line in format_table(results, args.tolerance):
        print(line)
    print()
    print(format_summary(summ, self_mode=args.self_mode, tolerance=args.tolerance))
    if args.json:
        doc = dict(argv=sys.argv, plan=plan, A=desc_a, B=desc_b, self=args.self_mode,
                   header=header, summary=summ, results=results)
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1, default=str)
        print(f"raw numbers: {args.json}")
    if args.self_mode:
        return 0 if summ.get("self_ok") else 1
    return 1 if summ.get("slower") else 0


if __name__ == "__main__":
    sys.exit(main())
