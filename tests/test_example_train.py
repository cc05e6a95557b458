"""The training example (examples/train_digits.py) really trains.

A few epochs with a fixed seed must lower the training loss, keep the validation
loss finite and reach a test accuracy far above chance (0.1) for both models;
early stopping must stop and restore the best weights; the finite-difference check
must pass for both backward passes and catch a broken one. Needs scikit-learn
(for the digits data), not matplotlib: no plot is drawn.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import fastloss as fl

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("train_digits_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(ex):
    return ex.run(epochs=10, seed=0, plot=None, verbose=False)


@pytest.mark.parametrize("key", ["logreg", "mlp"])
def test_training_lowers_the_loss_and_learns(results, key):
    r = results[key]
    train, val = np.array(r["train_loss"]), np.array(r["val_loss"])
    assert len(train) == len(val) == (r["stopped_epoch"] or 10)
    assert np.isfinite(train).all() and np.isfinite(val).all()
    # Epoch 1's mean already includes the initial loss log(10) = 2.3 of the first batches.
    assert train[-1] < 0.25 * train[0]
    assert train[-1] < 0.2
    assert val.min() < 0.5
    assert r["test_accuracy"] > 0.9, r["test_accuracy"]


def test_best_weights_are_restored(ex, results):
    X_val, y_val = ex.load_data(seed=0)["val"]
    for r in results.values():
        val_loss = float(fl.cross_entropy(ex.predict_logits(r["model"], X_val), y_val))
        assert val_loss == pytest.approx(min(r["val_loss"]), rel=1e-6)
        assert r["val_loss"][r["best_epoch"] - 1] == min(r["val_loss"])


def test_early_stopping_stops_and_restores_the_best_weights(ex):
    data = ex.load_data(seed=0)
    X_val, y_val = data["val"]
    model = ex.LogisticRegression(X_val.shape[1])
    h = ex.train(model, data, epochs=300, batch_size=32, lr=0.05, patience=2, rng=0,
                 log=lambda *a: None)
    assert h["stopped_epoch"] is not None and h["stopped_epoch"] < 300
    assert h["stopped_epoch"] == h["best_epoch"] + 2
    best = h["val_loss"][h["best_epoch"] - 1]
    assert best == min(h["val_loss"]) < h["val_loss"][-1]
    restored = float(fl.cross_entropy(ex.predict_logits(model, X_val), y_val))
    assert restored == pytest.approx(best, rel=1e-6)


def test_backward_passes_match_finite_differences(ex, results):
    errors = results["mlp"]["grad_check"]
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    assert max(errors.values()) < 1e-6, errors

    X, y = ex.load_data(seed=0)["train"]
    logreg_errors = ex.check_gradients(ex.LogisticRegression(64), X[:5], y[:5])
    assert max(logreg_errors.values()) < 1e-6, logreg_errors

    class NoReluMask(ex.MLP):          # a plausible bug: forgetting the ReLU derivative
        def backward(self, cache, dlogits):
            X, h = cache
            dh = dlogits @ self.params["W2"].T
            return {"W1": X.T @ dh, "b1": dh.sum(axis=0),
                    "W2": h.T @ dlogits, "b2": dlogits.sum(axis=0)}

    errors = ex.check_gradients(NoReluMask(64, 16, rng=0), X[:5], y[:5])
    assert errors["W1"] > 1e-2 and errors["b1"] > 1e-2
    assert errors["W2"] < 1e-6                   # the rest is still right


def test_command_line(ex, capsys):
    ex.main(["--epochs", "2", "--hidden", "16", "--no-plot"])
    out = capsys.readouterr().out
    assert "gradient check" in out
    assert out.count("test accuracy") == 2
