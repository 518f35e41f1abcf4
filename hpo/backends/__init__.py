"""Search backends: Optuna (ask/tell study, threads) and Ray Tune (schedulers, searchers, trainable actors)."""
