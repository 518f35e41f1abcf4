"""Generate the sklearn-MLP curve table: 1,024 configurations (Sobol points, a power of two) x 27 epochs x 3 seeds of a multilayer
perceptron on scikit-learn's bundled digits data set (no download), validation accuracy after every epoch.

    python benchmarks/search_efficiency/tables/make_sklearn_mlp.py \
        --out benchmarks/search_efficiency/data/sklearn_mlp.json.gz

An epoch is one `MLPClassifier.partial_fit` pass (Adam) over the training split (75 % of the 1,797 images,
stratified, the same split for every run); the validation split is the other 25 %. Searched: learning rate
and L2 penalty (log scale), batch size and width (integers, log scale), depth (1-3 hidden layers). The
configurations are Sobol points (scrambled, seeded) mapped onto those ranges, so the table covers the space
evenly; the seeds change the weight initialisation and the minibatch order. Deterministic: the same
arguments give the same table. Each configuration's measured seconds per epoch are recorded too.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.search_efficiency.table import CurveTable, TableParameter  # noqa: E402

PARAMETERS = (
    TableParameter("learning_rate_init", "float", 1e-4, 0.3, "log"),
    TableParameter("alpha", "float", 1e-7, 1.0, "log"),
    TableParameter("batch_size", "int", 16, 512, "log"),
    TableParameter("width", "int", 4, 128, "log"),
    TableParameter("depth", "int", 1, 3, "linear"),
)


def configurations(n: int, seed: int) -> list[dict]:
    from scipy.stats import qmc

    points = qmc.Sobol(d=len(PARAMETERS), scramble=True, seed=seed).random(n)
    configs = []
    for row in points:
        config: dict = {}
        for param, u in zip(PARAMETERS, row):
            low, high = float(param.minimum), float(param.maximum)
            if param.type == "int":
                low, high = low - 0.4999, high + 0.4999  # every integer an equal share
            value = math.exp(math.log(max(low, 1e-12)) + u * (math.log(high) - math.log(max(low, 1e-12)))) \
                if param.scale == "log" else low + u * (high - low)
            config[param.name] = int(min(max(round(value), param.minimum), param.maximum)) if param.type == "int" \
                else float(f"{value:.6g}")
        configs.append(config)
    return configs


def curve(config: dict, seed: int, epochs: int, data: tuple) -> tuple[list[float], float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_train, x_val, y_train, y_val, classes = data
    model = MLPClassifier(
        hidden_layer_sizes=(config["width"],) * config["depth"], alpha=config["alpha"],
        batch_size=config["batch_size"], learning_rate_init=config["learning_rate_init"], solver="adam",
        random_state=seed, shuffle=True,
    )
    values = []
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(epochs):
            model.partial_fit(x_train, y_train, classes=classes)
            values.append(float(model.score(x_val, y_val)))
    return values, (time.perf_counter() - started) / epochs


def all_seeds(config: dict, *, seeds: int, epochs: int, data: tuple) -> tuple[list[list[float]], float]:
    per_seed, spent = [], []
    for seed in range(seeds):
        values, epoch_s = curve(config, seed, epochs, data)
        per_seed.append(values)
        spent.append(epoch_s)
    return per_seed, float(np.mean(spent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/search_efficiency/data/sklearn_mlp.json.gz"))
    parser.add_argument("--configs", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="processes (configurations are independent)")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data / 16.0
    x_train, x_val, y_train, y_val = train_test_split(x, digits.target, test_size=0.25, stratify=digits.target,
                                                      random_state=args.seed)
    data = (x_train, x_val, y_train, y_val, np.unique(digits.target))
    started = time.monotonic()
    configs = configurations(args.configs, args.seed)
    curves, seconds = [], []
    command = "python benchmarks/search_efficiency/tables/make_sklearn_mlp.py " + " ".join(argv or sys.argv[1:])

    def save(done: int) -> None:
        CurveTable(
            name="sklearn_mlp",
            description=("scikit-learn MLPClassifier (Adam) on the bundled digits data set (1,347 train / 450 validation "
                         "images, stratified); one partial_fit pass per epoch; validation accuracy after every epoch."),
            metric="val_accuracy", direction="maximize", max_epochs=args.epochs, parameters=PARAMETERS,
            configs=tuple(configs[:done]), curves=np.array(curves), epoch_seconds=np.array(seconds),
            source={"script": "benchmarks/search_efficiency/tables/make_sklearn_mlp.py", "command": command,
                    "seed": args.seed, "configs_done": done, "configs_planned": len(configs),
                    "wall_minutes": round((time.monotonic() - started) / 60, 1)},
        ).save(args.out)

    from functools import partial
    from multiprocessing import Pool

    work = partial(all_seeds, seeds=args.seeds, epochs=args.epochs, data=data)
    with Pool(args.jobs) as pool:
        # imap keeps the configurations' order, so a stopped run keeps a prefix of the Sobol sequence
        for index, (per_seed, epoch_s) in enumerate(pool.imap(work, configs)):
            curves.append(per_seed)
            seconds.append([epoch_s] * args.epochs)
            if (index + 1) % 32 == 0 or index + 1 == len(configs):
                save(index + 1)  # a stopped run keeps what it finished (the Sobol order covers the space evenly)
                print(f"{index + 1} configurations ({(time.monotonic() - started) / 60:.1f} min)", flush=True)
    print(f"wrote {args.out}: {len(configs)} configurations x {args.seeds} seeds x {args.epochs} epochs", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
