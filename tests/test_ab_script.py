"""The pure parts of bench/ab.py (the A/B benchmark of two builds): argument
parsing, case lists, the per-round ratio statistics, missing cases, and the
worker protocol against a fake fastloss package -- nothing is built."""
import importlib.util
import math
import os
import sys
import textwrap

import pytest

AB_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "bench", "ab.py")


@pytest.fixture(scope="module")
def ab():
    spec = importlib.util.spec_from_file_location("fastloss_bench_ab", AB_PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_parse_args(ab):
    a = ab.parse_args(["--a", "ff20855", "--b", "HEAD"])
    assert (a.a, a.b, a.self_mode) == ("ff20855", "HEAD", False)
    assert a.threads == [1, 2] and a.outs == ["out", "fresh"] and a.rounds == 12
    assert a.losses == list(ab.OLD_LOSSES) and len(a.losses) == 16
    a = ab.parse_args(["--a", "main", "--b-tree", "/work/main", "--sizes", "1e3,1e7",
                       "--shapes", "64x32000", "--threads", "2", "--losses", "mse"])
    assert a.b_tree == "/work/main" and a.sizes == [1000, 10**7]
    assert a.shapes == [(64, 32000)] and a.threads == [2] and a.losses == ["mse"]
    assert ab.parse_args(["--self", "--a", "HEAD"]).self_mode
    for bad in (["--a", "x"],                          # no B and not --self
                ["--self", "--a", "x", "--b", "y"],    # --self takes no B
                ["--b", "y"],                          # no A
                ["--a", "x", "--b", "y", "--b-tree", "."],
                ["--a", "x", "--b", "y", "--outs", "reused"],
                ["--a", "x", "--b", "y", "--shapes", "12"]):
        with pytest.raises(SystemExit):
            ab.parse_args(bad)


def test_case_list(ab):
    cases = ab.build_cases()
    # 13 elementwise losses x 3 sizes + 3 class losses x 6 shapes, x 2 threads x 2 outputs
    assert len(cases) == (13 * 3 + 3 * 6) * 2 * 2 == 228
    keys = [c["key"] for c in cases]
    assert len(set(keys)) == len(keys)
    assert "mse 1e7 t2 out" in keys and "cross_entropy 8192x1000 t1 fresh" in keys
    assert "nll 8x50000 t2 fresh" in keys and "hinge 1e5 t1 out" in keys
    assert {c["family"] for c in cases if c["loss"] == "multi_margin"} == {"class"}
    sub = ab.build_cases(["huber", "nll"], sizes=[10**5], shapes=[(4096, 10)], threads=[1],
                         outs=["out"], extra=["gaussian_nll", "foo:class"])
    assert [c["key"] for c in sub] == ["huber 1e5 t1 out", "nll 4096x10 t1 out",
                                      "gaussian_nll 1e5 t1 out", "foo 4096x10 t1 out"]
    m = ab.build_cases(match=r"^mse .* t2 fresh$")
    assert [c["key"] for c in m] == ["mse 1e3 t2 fresh", "mse 1e5 t2 fresh", "mse 1e7 t2 fresh"]


def test_quantile_and_ratio_stats(ab):
    assert ab.quantile([4, 1, 3, 2], 0.5) == 2.5
    assert ab.quantile([1, 2, 3, 4, 5], 0.25) == 2.0
    assert ab.quantile([1, 2, 3, 4], 0.75) == pytest.approx(3.25)
    st = ab.ratio_stats([1.0] * 5, [1.0, 1.1, 1.2, 0.9, 5.0])
    assert st["ratio"] == pytest.approx(1.1)
    assert st["q25"] == pytest.approx(1.0) and st["q75"] == pytest.approx(1.2)
    assert (st["lo"], st["hi"]) == (pytest.approx(0.9), pytest.approx(5.0))
    assert st["rounds"] == 5
    # the ratio is the median of PER-ROUND ratios (paired), not a ratio of medians:
    # here the medians give 9/10 = 0.9, the rounds say B is 10% slower 2 times of 3
    st = ab.ratio_stats([1.0, 10.0, 10.0], [1.1, 11.0, 9.0])
    assert st["ratio"] == pytest.approx(1.1)
    assert (st["time_a"], st["time_b"]) == (10.0, 9.0)
    with pytest.raises(ValueError):
        ab.ratio_stats([1.0, 2.0], [1.0])


def _res(ab, key, ta, tb):
    return dict(key=key, status="ok", stats=ab.ratio_stats(ta, tb), notes=[])


def test_flags_and_summary(ab):
    slow = _res(ab, "mse 1e7 t1 out", [1.0] * 4, [1.12, 1.13, 1.11, 1.15])
    fine = _res(ab, "mse 1e3 t1 out", [1.0] * 4, [0.97, 1.02, 1.0, 1.01])
    fast = _res(ab, "nll 8x50000 t2 out", [1.0] * 4, [0.5, 0.52, 0.49, 0.51])
    assert ab.flag(slow["stats"]) == "SLOWER" and ab.flag(fine["stats"]) == ""
    assert ab.flag(ab.ratio_stats([1.0] * 4, [0.8, 0.8, 1.05, 1.05])) == "(noisy)"
    s = ab.summarize([slow, fine, fast])
    assert s["slower"] == ["mse 1e7 t1 out"] and s["timed"] == 3
    assert s["worst"][0] == "mse 1e7 t1 out"
    assert s["max_dev"][0] == "nll 8x50000 t2 out"
    assert s["max_dev"][1] == pytest.approx(0.495)
    assert s["geomean"] == pytest.approx(math.exp((math.log(1.125) + math.log(1.005)
                                                   + math.log(0.505)) / 3))
    self_s = ab.summarize([fine, _res(ab, "x", [1.0] * 3, [1.04, 1.03, 1.06])], self_mode=True)
    assert self_s["self_ok"] and self_s["max_dev"] == ("x", pytest.approx(0.04))
    bad = ab.summarize([fine, _res(ab, "y", [1.0] * 3, [0.9, 0.93, 0.94])], self_mode=True)
    assert not bad["self_ok"] and bad["max_dev"][0] == "y"
    assert "OUTSIDE" in ab.format_summary(bad, self_mode=True)
    assert "1 case(s) more than 10% slower" in ab.format_summary(s)


def test_missing_case_reported(ab):
    ok = dict(status="ok", value=1.0, checksum=1)
    assert ab.case_status(ok, ok) == "ok"
    st = ab.case_status(ok, dict(status="missing", reason="no loss 'kl_div'"))
    assert st == "missing in B: no loss 'kl_div'"
    assert ab.case_status(dict(status="error", error="boom"), ok) == "error in A: boom"
    rows = [_res(ab, "mse 1e3 t1 out", [1.0], [1.0]),
            dict(key="kl_div 1e3 t1 out", status=st, notes=[])]
    table = "\n".join(ab.format_table(rows))
    assert "kl_div 1e3 t1 out" in table and "missing in B" in table
    s = ab.summarize(rows)
    assert (s["timed"], s["missing"]) == (1, 1)


def test_plan_case(ab):
    plan = dict(ab.PLAN, repeat=3, min_repeat=1, budget=0.1)
    p = ab.plan_case(dict(number=100, per_call=1e-5), dict(number=200, per_call=2e-5), plan)
    assert p["number"] == 200 and p["repeat"] == 3      # same batch size for both builds
    p = ab.plan_case(dict(number=1, per_call=0.06), dict(number=1, per_call=0.05), plan)
    assert p["number"] == 1 and p["repeat"] == 1        # one 60 ms call: budget allows 1
    assert ab.estimate_seconds([p], rounds=12) == pytest.approx(24 * p["cost"])


FAKE = textwrap.dedent('''
    """A stand-in for a fastloss build: mse only, out= and n_threads= accepted."""
    import numpy as np

    class _MSE:
        def value_and_grad(self, p, t, out=None, n_threads=None):
            d = p - t
            g = np.multiply(d, 2.0 / d.size, out=out)
            return np.float32(np.mean(d * d)), g

    losses = {"mse": _MSE()}

    def show_config(print_=True):
        return {"simd": "fake", "openmp": False, "threads": 1}
''')


def test_workers_against_fake_build(ab, tmp_path):
    for side in ("a", "b"):
        pkg = tmp_path / side / "fastloss"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(FAKE)
    cases = ab.build_cases(["mse", "hinge"], sizes=[1000], threads=[1], outs=["out", "fresh"])
    plan = dict(ab.PLAN, rounds=3, target=2e-4, repeat=2, budget=0.01, gap=0.0)
    msgs = []
    header, results = ab.run_ab(str(tmp_path / "a"), str(tmp_path / "b"), cases, plan,
                                log_dir=str(tmp_path / "logs"), progress=msgs.append)
    assert header["A"]["file"].startswith(str(tmp_path / "a"))
    assert header["B"]["file"].startswith(str(tmp_path / "b"))
    assert header["A"]["config"]["simd"] == "fake"
    by = {r["key"]: r for r in results}
    assert by["hinge 1e3 t1 out"]["status"].startswith("missing in A")
    for k in ("mse 1e3 t1 out", "mse 1e3 t1 fresh"):
        r = by[k]
        assert r["status"] == "ok" and r["notes"] == []    # same data, same value
        assert len(r["times_a"]) == len(r["times_b"]) == 3
        assert 0.1 < r["stats"]["ratio"] < 10
    assert sum(m.startswith("round ") for m in msgs) == 3
