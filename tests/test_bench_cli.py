"""Tests of the benchmark command (fastloss/bench.py): it runs, its --json
holds what its table printed, and it times the functions it claims to --
an instrumented loss or peer slowed by a known delay must come out slower by
about that delay, and nothing else may.  Peers that are not installed are
skipped by the benchmark itself; the tests only check what is installed.
"""
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastloss as fl
from fastloss import bench

ROOT = Path(__file__).resolve().parents[1]
DELAY = 0.003                  # seconds injected into one call
TINY = ["--sizes", "1000", "--shapes", "32x5", "--dtype", "float32", "--threads", "1",
        "--repeat", "3", "--min-time", "0.001", "--no-progress"]


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _run(argv, tmp_path, capsys, name="out.json"):
    """bench.main in this process -> (stdout, the --json document)."""
    path = tmp_path / name
    assert bench.main(argv + ["--json", str(path)]) == 0
    out = capsys.readouterr().out
    return out, json.loads(path.read_text())


def _median(doc, loss, contender):
    (row,) = [r for r in doc["rows"] if r["loss"] == loss]
    return row["times"][contender]["median"]


def _busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class SlowLoss:
    """A fastloss loss whose value_and_grad first burns DELAY seconds and
    records how it was called."""

    def __init__(self, loss):
        self.loss, self.reference, self.calls = loss, loss.reference, []

    def __call__(self, *a, **kw):
        return self.loss(*a, **kw)

    def value_and_grad(self, y_pred, y_true, **kw):
        self.calls.append(kw)
        _busy_wait(DELAY)
        return self.loss.value_and_grad(y_pred, y_true, **kw)


# ------------------------------------------------------------------ the CLI

def test_cli_runs_and_json_holds_the_printed_table(tmp_path):
    path = tmp_path / "r.json"
    env = dict(os.environ, PYTHONIOENCODING="utf-8",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "fastloss.bench", "--loss", "mse,huber", *TINY,
         "--compare", "none", "--json", str(path)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    doc = json.loads(path.read_text())

    assert "machine :" in out and doc["machine"]["simd"] in out
    simd_line = next(line for line in out.splitlines() if line.startswith("SIMD    :"))
    assert fl.show_config(print_=False)["simd"] in simd_line
    assert doc["machine"]["cpu"] and doc["machine"]["cpu"] == bench.cpu_model()
    assert f"machine : {doc['machine']['cpu']}" in out
    assert [r["loss"] for r in doc["rows"]] == ["mse", "huber"]
    for line in bench.format_table(doc["rows"], [], micro="\u00b5"):
        assert line in out                      # every printed line comes from the JSON
    for row in doc["rows"]:
        for contender, stats in row["times"].items():
            (raw,) = [r for r in doc["raw"] if r["loss"] == row["loss"]
                      and r["contender"] == contender]
            assert stats["median"] == statistics.median(raw["times"])
            assert stats["min"] == min(raw["times"])
        assert row["speedup"]["reference"] == pytest.approx(
            row["times"]["reference"]["median"] / row["times"]["fastloss"]["median"])
        assert row["gbps"] == pytest.approx(3 * 4000 / row["times"]["fastloss"]["median"] / 1e9)
    assert proc.stderr == ""                    # not a TTY: no progress line


def test_quick_plan():
    ap = bench.make_parser()
    s = bench.settings_from(ap.parse_args(["--quick"]), ap)
    cases = bench.plan(s)
    assert {c.loss for c in cases} == {spec.name for spec in bench.TABLE}
    assert {c.dtype for c in cases} == {"float32"}
    for c in cases:
        assert c.threads == ((1, 2) if c.elements >= bench.LARGE else (1,))
        if c.family == "elementwise":
            assert c.shape[0] in (10**3, 10**5, 10**7)
        elif c.family == "rows":
            assert c.shape in bench.ROW_SHAPES
        else:
            assert c.shape in bench.CLASS_SHAPES


def test_bad_arguments_are_usage_errors(capsys):
    for argv in (["--loss", "nope"], ["--dtype", "float8"], ["--compare", "tensorflow"],
                 ["--sizes", "-5"], ["--shapes", "10"]):
        with pytest.raises(SystemExit) as e:
            bench.main(argv)
        assert e.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_progress_goes_to_stderr_only_when_enabled(capsys):
    p = bench.Progress(2, enabled=True)
    p.step("mse 1e3")
    p.done()
    assert "[1/2] mse 1e3" in capsys.readouterr().err
    q = bench.Progress(2, enabled=False)
    q.step("mse 1e3")
    q.done()
    assert capsys.readouterr().err == ""


def test_fmt_time():
    assert bench.fmt_time(1.52e-6) == "1.52 us"
    assert bench.fmt_time(0.0152) == "15.2 ms"
    assert bench.fmt_time(0.152) == "152 ms"
    assert bench.fmt_time(2.5) == "2.50 s"
    assert bench.fmt_time(None) == "-"


# ------------------------------------------- it times what it says it times

def test_an_injected_delay_shows_up_in_fastloss_only(tmp_path, capsys, monkeypatch):
    argv = ["--loss", "mse", *TINY, "--compare", "none"]
    _, before = _run(argv, tmp_path, capsys, "before.json")
    slow = SlowLoss(fl.losses["mse"])
    monkeypatch.setitem(fl.losses, "mse", slow)
    _, after = _run(argv, tmp_path, capsys, "after.json")

    for contender in ("fastloss", "alloc"):       # both call value_and_grad
        extra = _median(after, "mse", contender) - _median(before, "mse", contender)
        assert 0.9 * DELAY < extra < 2 * DELAY, (contender, extra)
    assert _median(after, "mse", "reference") < DELAY / 2     # the reference is not it
    assert _median(after, "mse", "roofline") < DELAY / 2

    with_out = [kw for kw in slow.calls if "out" in kw]
    without = [kw for kw in slow.calls if "out" not in kw]
    assert with_out and without
    assert len({id(kw["out"]) for kw in with_out}) == 1      # ONE reused gradient buffer
    assert with_out[0]["out"].flags.c_contiguous
    assert {kw["n_threads"] for kw in slow.calls} == {1}


@pytest.mark.skipif(not _installed("torch"), reason="torch not installed")
def test_an_injected_delay_shows_up_in_the_torch_column(tmp_path, capsys, monkeypatch):
    import torch.nn.functional as F
    argv = ["--loss", "mse", *TINY, "--compare", "torch"]
    _, before = _run(argv, tmp_path, capsys, "before.json")
    real = F.mse_loss

    def slow_mse(*a, **kw):
        _busy_wait(DELAY)
        return real(*a, **kw)
    monkeypatch.setattr(F, "mse_loss", slow_mse)
    _, after = _run(argv, tmp_path, capsys, "after.json")
    extra = _median(after, "mse", "torch") - _median(before, "mse", "torch")
    assert 0.9 * DELAY < extra < 2 * DELAY
    assert _median(after, "mse", "fastloss") < DELAY / 2


def test_every_peer_computes_the_same_loss(tmp_path, capsys):
    """Every adapter of every installed peer agrees with fastloss on the loss
    value (a column timing some other function would not); missing peers are
    listed as skipped."""
    argv = ["--sizes", "1000", "--shapes", "32x5", "--dtype", "float32", "--threads", "1",
            "--repeat", "1", "--min-time", "0.0002", "--no-progress",
            "--compare", "numpy,torch,jax,sklearn"]
    out, doc = _run(argv, tmp_path, capsys)
    loaded, skipped = doc["machine"]["peers"], doc["skipped_peers"]
    assert set(loaded) | set(skipped) == {"numpy", "torch", "jax", "sklearn"}
    assert "numpy" in loaded                    # NumPy is always there
    for name in skipped:
        assert f"skipped {name}" in out
    for row in doc["rows"]:
        for peer in loaded:
            if bench.has_adapter(peer, row["loss"]):
                assert row["agrees"][peer] is True, (row["loss"], peer)
            else:
                assert peer not in row["times"]
        assert row["agrees"]["reference"] is True


@pytest.mark.skipif(not _installed("matplotlib"), reason="matplotlib not installed")
def test_plot(tmp_path, capsys):
    png = tmp_path / "s.png"
    assert bench.main(["--loss", "mse,nll", *TINY, "--compare", "none",
                       "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import fails
    with pytest.raises(SystemExit) as e:
        bench.main(["--loss", "mse", *TINY, "--plot", "x.png"])
    assert e.value.code == 2
    assert "matplotlib" in capsys.readouterr().err


# ------------------------------------------------ the idiomatic NumPy column

def test_numpy_column_times_the_declared_spelling(tmp_path, capsys, monkeypatch):
    """The "numpy" column is the declaration's peers["numpy"] (every loss
    has one): slowing that function by DELAY slows the column by DELAY and
    leaves the reference column alone."""
    assert all("numpy" in spec.peers for spec in bench.TABLE)
    argv = ["--loss", "mse", *TINY, "--compare", "numpy"]
    out, before = _run(argv, tmp_path, capsys, "before.json")
    head = next(line for line in out.splitlines() if line.startswith("size"))
    assert head.split()[-2:] == ["reference", "numpy"]
    real = bench.ADAPTERS["mse"]["numpy"]

    def slow(*a, **kw):
        _busy_wait(DELAY)
        return real(*a, **kw)
    monkeypatch.setitem(bench.ADAPTERS["mse"], "numpy", slow)
    _, after = _run(argv, tmp_path, capsys, "after.json")
    extra = _median(after, "mse", "numpy") - _median(before, "mse", "numpy")
    assert 0.9 * DELAY < extra < 2 * DELAY
    assert _median(after, "mse", "reference") < DELAY / 2
    (row,) = after["rows"]
    assert row["agrees"]["numpy"] is True


# ------------------------------------------------------------------ the plot

def test_every_contender_has_its_own_colour_and_marker():
    contenders = ["reference"] + list(bench.PEERS)
    assert set(contenders) <= set(bench.PLOT_STYLE)
    colours = [bench.PLOT_STYLE[c][0] for c in contenders]
    markers = [bench.PLOT_STYLE[c][1] for c in contenders]
    assert len(set(colours)) == len(contenders), colours
    assert len(set(markers)) == len(contenders), markers


def _row(loss, family, shape, speedup):
    return {"loss": loss, "family": family, "shape": list(shape),
            "elements": math.prod(shape), "dtype": "float32", "threads": 1,
            "speedup": speedup}


def test_plot_lines_never_join_unlike_shapes():
    rows = [_row("cross_entropy", "class", s, {"reference": 2.0, "torch": 3.0})
            for s in bench.CLASS_SHAPES]
    rows += [_row("mse", "elementwise", (n,), {"reference": 2.0}) for n in bench.SIZES]
    series = bench.plot_series(rows, ["reference", "torch"])
    # class losses: one line per (contender, class count), each with all its shapes
    ce = series["cross_entropy"]
    counts = sorted({s[-1] for s in bench.CLASS_SHAPES})
    assert sorted((c, g) for c, _, g, _ in ce) == sorted(
        (c, k) for c in ("reference", "torch") for k in counts)
    for c, _, group, pts in ce:
        want = sorted(math.prod(s) for s in bench.CLASS_SHAPES if s[-1] == group)
        assert [e for e, _ in pts] == want
    # elementwise: one line per contender over every size
    (line,) = series["mse"]
    assert line[2] is None and [e for e, _ in line[3]] == list(bench.SIZES)


# ------------------------------------------- output paths checked up front

@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_bad_output_path_fails_before_any_timing(tmp_path, capsys, monkeypatch, flag):
    def no_run(*a, **kw):
        raise AssertionError("the benchmark ran before the bad path was reported")
    monkeypatch.setattr(bench, "run", no_run)
    for bad, why in ((tmp_path / "missing" / "r.out", "does not exist"),
                     (tmp_path, "is a directory")):
        with pytest.raises(SystemExit) as e:
            bench.main(["--loss", "mse", *TINY, flag, str(bad)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err and why in err, err
        assert "Traceback" not in err


def test_bad_json_path_from_the_command_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fastloss.bench", "--quick", "--json",
                           str(tmp_path / "no" / "such" / "dir.json")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""                          # no header: nothing was timed
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    assert time.perf_counter() - t0 < 60
