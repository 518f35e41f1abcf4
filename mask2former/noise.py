"""Third-party console noise the user cannot act on, filtered where the trainer starts those libraries.

`mask2former <action>` calls `quiet_libraries()` first. It drops, by their exact text:
- Lightning's advertising tips ("💡 Tip: ... litlogger / litmodels") and two notes about settings we pass
  on purpose (`limit_val_batches=1.0`, estimating stepping batches);
- Lightning's own internal DeprecationWarning about `LeafSpec` (raised inside Lightning, fixed upstream);
- NumPy 2's DeprecationWarning about pycocotools' `__array__` (inside pycocotools' compiled RLE code);
- torchao's "Failed to load …/_C*.so" lines (its optional C++ kernels do not match this torch build; the
  Python kernels we use do not need them).
Everything else stays: Lightning's device summary, every warning about our own code or about settings a
user chose (e.g. few data-loader workers), and every error.
"""

from __future__ import annotations

from skillkit.cli import DropMessages, drop_noise

__all__ = ["DROPPED_LOG_RECORDS", "DropMessages", "IGNORED_WARNINGS", "quiet_libraries"]

#: logger name -> message prefixes to drop
DROPPED_LOG_RECORDS: dict[str, tuple[str, ...]] = {
    "lightning.pytorch.utilities.rank_zero": (
        "💡 Tip:", "`Trainer(limit_val_batches=1.0)` was configured", "Loading `train_dataloader` to estimate",
    ),
    "torchao": ("Failed to load ",),
}
#: (category, message regex) of warnings to ignore
IGNORED_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (DeprecationWarning, r"__array__ implementation doesn't accept a copy keyword"),
    (Warning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    drop_noise(DROPPED_LOG_RECORDS, IGNORED_WARNINGS)
