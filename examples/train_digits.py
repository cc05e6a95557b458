"""Train two digit classifiers with a hand-written NumPy loop, the loss coming from fastloss.

What this shows
---------------
* The one fastloss call per training step::

      loss, dlogits = fl.cross_entropy.value_and_grad(logits, yb, out=dlogits_buf[:n])

  returns the batch's mean cross-entropy and its gradient with respect to the
  logits, computed together in one fused pass and written into a reused float32
  buffer. Everything else is plain NumPy: the forward pass, the backward pass
  from the logits to the weights, and SGD with momentum and weight decay.
* Two models on scikit-learn's bundled 8x8 digits (1797 images, 10 classes,
  standardized, split 60/20/20 into train / validation / test):
  multinomial logistic regression, and an MLP with one ReLU hidden layer.
* Each epoch records the training loss (the mean over the epoch's batches) and
  the validation loss (``fl.cross_entropy`` on the whole validation set). Early
  stopping ends training when the validation loss has not improved for
  ``patience`` epochs, says whether that looks like overfitting or a plateau,
  and restores the best weights. The script then reports test accuracy.
* Before training, the MLP's hand-written backward pass (the gradients of W1, b1,
  W2, b2) is checked against central finite differences (float64, a tiny batch).
* The loss curves are saved as a PNG when matplotlib is installed.

Run from the repository root (with the extension built in place)::

    PYTHONPATH=. python3 examples/train_digits.py               # writes docs/train_digits.png
    PYTHONPATH=. python3 examples/train_digits.py --hidden 128 --lr 0.01 --no-plot

Tests and notebooks can call ``run(epochs=..., seed=..., plot=None, verbose=False)``,
which returns each model's loss history, early-stopping epochs and test accuracy.
"""
import argparse
import copy
import time
from pathlib import Path

import numpy as np

import fastloss as fl

N_CLASSES = 10
DEFAULT_PLOT = Path(__file__).resolve().parents[1] / "docs" / "train_digits.png"


# --------------------------------------------------------------------------- data

def load_data(seed=0):
    """Digits, split 60/20/20 (stratified, fixed seed), standardized with training statistics.

    Returns ``{"train": (X, y), "val": (X, y), "test": (X, y)}`` with float32 X.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=seed)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=seed)

    mean = X_train.mean(axis=0)
    # Some border pixels are (almost) always 0 in the training set. Floor the
    # scale at one grey level (of 16) so they do not become huge values on the
    # few validation or test images where they are not 0.
    scale = np.maximum(X_train.std(axis=0), 1.0)

    def standardize(A):
        return ((A - mean) / scale).astype(np.float32)

    return {"train": (standardize(X_train), y_train),
            "val": (standardize(X_val), y_val),
            "test": (standardize(X_test), y_test)}


# ------------------------------------------------------------------------- models
#
# A model has a dict of parameter arrays and two methods:
#   forward(X)              -> (logits, cache)
#   backward(cache, dlogits) -> dict of gradients, one per parameter
# Weight decay is applied to the parameters whose names start with "W".

class LogisticRegression:
    """Multinomial logistic regression: ``logits = X @ W + b``."""

    name = "logistic regression"

    def __init__(self, n_in, n_classes=N_CLASSES):
        self.params = {"W": np.zeros((n_in, n_classes), np.float32),
                       "b": np.zeros(n_classes, np.float32)}

    def forward(self, X):
        p = self.params
        return X @ p["W"] + p["b"], X

    def backward(self, X, dlogits):
        return {"W": X.T @ dlogits, "b": dlogits.sum(axis=0)}


class MLP:
    """One hidden ReLU layer: ``logits = relu(X @ W1 + b1) @ W2 + b2``."""

    def __init__(self, n_in, n_hidden, n_classes=N_CLASSES, rng=None):
        rng = np.random.default_rng(rng)
        self.name = f"MLP {n_in}-{n_hidden}-{n_classes} (ReLU)"
        self.params = {  # He initialization for the ReLU layer
            "W1": (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2 / n_in)).astype(np.float32),
            "b1": np.zeros(n_hidden, np.float32),
            "W2": (rng.standard_normal((n_hidden, n_classes)) * np.sqrt(1 / n_hidden)).astype(np.float32),
            "b2": np.zeros(n_classes, np.float32),
        }

    def forward(self, X):
        p = self.params
        h = np.maximum(X @ p["W1"] + p["b1"], 0)
        return h @ p["W2"] + p["b2"], (X, h)

    def backward(self, cache, dlogits):
        X, h = cache
        dh = dlogits @ self.params["W2"].T
        dh *= h > 0                          # ReLU: no gradient through inactive units
        return {"W1": X.T @ dh, "b1": dh.sum(axis=0),
                "W2": h.T @ dlogits, "b2": dlogits.sum(axis=0)}


def predict_logits(model, X):
    return model.forward(X)[0]


def accuracy(model, X, y):
    return float(np.mean(predict_logits(model, X).argmax(axis=1) == y))


def check_gradients(model, X, y, eps=1e-6):
    """Relative error of the model's backward pass against central differences.

    Works on a float64 copy of the model, with the mean cross-entropy over the
    batch ``(X, y)`` as L, and perturbs every entry of every parameter. Returns
    ``{name: ||numeric - analytic|| / ||numeric + analytic||}`` (about 1e-9 when
    the backward pass is right).
    """
    model = copy.copy(model)
    model.params = {k: v.astype(np.float64) for k, v in model.params.items()}
    X = np.asarray(X, np.float64)

    logits, cache = model.forward(X)
    _, dlogits = fl.cross_entropy.value_and_grad(logits, y)
    analytic = model.backward(cache, dlogits)

    errors = {}
    for name, p in model.params.items():
        numeric = np.empty_like(p)
        for i in np.ndindex(p.shape):
            w = p[i]
            p[i] = w + eps
            up = fl.cross_entropy(predict_logits(model, X), y)
            p[i] = w - eps
            down = fl.cross_entropy(predict_logits(model, X), y)
            p[i] = w
            numeric[i] = (up - down) / (2 * eps)
        errors[name] = float(np.linalg.norm(numeric - analytic[name])
                             / np.linalg.norm(numeric + analytic[name]))
    return errors


# ----------------------------------------------------------------------- training

def train(model, data, *, epochs, batch_size, lr, momentum=0.9, weight_decay=0.0,
          patience=10, rng=None, log=print):
    """Mini-batch SGD with momentum and early stopping on the validation loss.

    Returns the history: ``train_loss`` and ``val_loss`` per epoch,
    ``best_epoch`` (1-based; its weights are restored into ``model``) and
    ``stopped_epoch`` (None if all epochs ran).
    """
    rng = np.random.default_rng(rng)
    X, y = data["train"]
    X_val, y_val = data["val"]
    n = len(X)

    dlogits_buf = np.empty((batch_size, N_CLASSES), np.float32)   # reused every step
    velocity = {k: np.zeros_like(p) for k, p in model.params.items()}
    history = {"name": model.name, "train_loss": [], "val_loss": [],
               "best_epoch": 0, "stopped_epoch": None}
    best_val, best_params = np.inf, copy.deepcopy(model.params)

    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        loss_sum = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            logits, cache = model.forward(X[idx])
            # The one fastloss call: mean batch loss and d loss / d logits, in one pass.
            # dlogits_buf[:m] is C-contiguous, so the last, shorter batch reuses it too.
            loss, dlogits = fl.cross_entropy.value_and_grad(
                logits, y[idx], out=dlogits_buf[:len(idx)])
            loss_sum += float(loss) * len(idx)

            grads = model.backward(cache, dlogits)
            for k, p in model.params.items():
                g = grads[k] + weight_decay * p if k.startswith("W") else grads[k]
                velocity[k] *= momentum
                velocity[k] -= lr * g
                p += velocity[k]

        train_loss = loss_sum / n
        val_loss = float(fl.cross_entropy(predict_logits(model, X_val), y_val))
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)

        improved = val_loss < best_val
        if improved:
            best_val, history["best_epoch"] = val_loss, epoch
            best_params = copy.deepcopy(model.params)
        log(f"  epoch {epoch:3d}  train loss {train_loss:.4f}  val loss {val_loss:.4f}"
            + ("  *" if improved else ""))

        if epoch - history["best_epoch"] >= patience:
            best = history["best_epoch"]
            rising = val_loss > 1.05 * best_val and train_loss < history["train_loss"][best - 1]
            kind = ("overfitting: the validation loss is rising while the training loss still falls"
                    if rising else "plateau: the validation loss has stopped improving")
            log(f"  early stop at epoch {epoch}: no improvement for {patience} epochs ({kind})")
            history["stopped_epoch"] = epoch
            break

    model.params = best_params
    log(f"  restored the weights of epoch {history['best_epoch']} (val loss {best_val:.4f})")
    return history


# ---------------------------------------------------------------------- the plot

def plot_curves(results, path, log=print):
    """Train and validation loss of each model, one panel per model, saved as PNG."""
    try:
        from matplotlib.figure import Figure   # no pyplot: no GUI backend, no global state
    except ImportError:
        log("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return None

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, len(results), sharey=True)
    for ax, r in zip(np.atleast_1d(axes), results.values()):
        epochs = np.arange(1, len(r["train_loss"]) + 1)
        ax.plot(epochs, r["train_loss"], label="train (epoch mean)")
        ax.plot(epochs, r["val_loss"], label="validation")
        ax.axvline(r["best_epoch"], color="grey", linestyle=":",
                   label=f"best epoch ({r['best_epoch']}), weights restored")
        ax.set(title=f"{r['name']} - test accuracy {r['test_accuracy']:.3f}",
               xlabel="epoch", yscale="log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    np.atleast_1d(axes)[0].set_ylabel("cross-entropy (fl.cross_entropy)")
    fig.suptitle("Digits: mini-batch SGD in NumPy, loss and gradient from "
                 "fl.cross_entropy.value_and_grad")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    log(f"loss curves written to {path}")
    return path


# ------------------------------------------------------------------------ driver

def run(epochs=200, batch_size=32, lr=0.02, momentum=0.9, weight_decay=1e-4, patience=10,
        seed=0, hidden=64, plot=DEFAULT_PLOT, verbose=True):
    """Train both models; return ``{"logreg": history, "mlp": history}``.

    Each history (see ``train``) also holds ``test_accuracy`` and the trained
    ``model``; the MLP's holds ``grad_check``, the relative error of its
    backward pass per parameter (see ``check_gradients``). ``plot=None`` skips the figure.
    """
    log = print if verbose else (lambda *args, **kwargs: None)
    rng = np.random.default_rng(seed)
    data = load_data(seed)
    X_train, y_train = data["train"]
    n_in = X_train.shape[1]
    log(f"digits: {len(X_train)} train / {len(data['val'][1])} validation / "
        f"{len(data['test'][1])} test images, {n_in} features, {N_CLASSES} classes")

    models = {"logreg": LogisticRegression(n_in), "mlp": MLP(n_in, hidden, rng=rng)}

    grad_err = check_gradients(models["mlp"], X_train[:5], y_train[:5])
    log("gradient check, MLP backward pass vs central differences (5 images, float64): "
        "relative error " + ", ".join(f"{k} {e:.1e}" for k, e in grad_err.items()))

    results = {}
    for key, model in models.items():
        log(f"\n{model.name}: batch {batch_size}, lr {lr}, momentum {momentum}, "
            f"weight decay {weight_decay}, patience {patience}")
        t0 = time.perf_counter()
        history = train(model, data, epochs=epochs, batch_size=batch_size, lr=lr,
                        momentum=momentum, weight_decay=weight_decay, patience=patience,
                        rng=rng, log=log)
        history["seconds"] = time.perf_counter() - t0
        history["test_accuracy"] = accuracy(model, *data["test"])
        history["model"] = model
        results[key] = history
    results["mlp"]["grad_check"] = grad_err

    log("\nresults")
    for r in results.values():
        stop = (f"stopped at epoch {r['stopped_epoch']}" if r["stopped_epoch"]
                else f"ran all {len(r['train_loss'])} epochs")
        log(f"  {r['name']:<28} {stop}, best epoch {r['best_epoch']}, "
            f"test accuracy {r['test_accuracy']:.4f}  ({r['seconds']:.2f} s)")

    if plot is not None:
        plot_curves(results, plot, log)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs (default 200)")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (default 0.02)")
    parser.add_argument("--momentum", type=float, default=0.9, help="default 0.9")
    parser.add_argument("--weight-decay", type=float, default=1e-4,
                        help="L2 penalty on the weight matrices (default 1e-4)")
    parser.add_argument("--patience", type=int, default=10,
                        help="epochs without a better validation loss before stopping (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="split, initialization and shuffling")
    parser.add_argument("--hidden", type=int, default=64, help="MLP hidden units (default 64)")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, metavar="PATH",
                        help="PNG of the loss curves (default: docs/train_digits.png in the repository)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    args = parser.parse_args(argv)
    run(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed,
        hidden=args.hidden, plot=None if args.no_plot else args.plot)


if __name__ == "__main__":
    main()
