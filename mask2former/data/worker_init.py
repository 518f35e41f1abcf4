"""`worker_init_fn` of every data loader the trainer builds.

Data-loader workers ignore SIGTERM: the engine signals the trainer's whole process group, and a worker
killed by that signal makes the main process raise "DataLoader worker exited unexpectedly", turning a clean
stop into a failure (see mask2former/training/distributed_stop.py for the whole stop protocol). Workers end
when their loader shuts them down; a stuck one is reaped by the engine's SIGKILL of the group.

Setting our own `worker_init_fn` keeps Lightning from adding its seeding function, so it is called from
here when `seed_everything(workers=True)` asked for it.
"""

from __future__ import annotations

import os
import signal


def ignore_sigterm_in_worker(worker_id: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("PL_SEED_WORKERS") == "1":
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)
