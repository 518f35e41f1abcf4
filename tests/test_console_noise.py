"""Third-party noise is dropped where the project starts the library, and nothing else is: each filter drops
exactly the messages it names."""

from __future__ import annotations

import logging
import warnings

import pytest


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("package", ["hpo", "mask2former"])
def test_each_dropped_message_is_dropped_and_its_neighbours_kept(package: str) -> None:
    noise = __import__(f"{package}.noise", fromlist=["quiet_libraries"])
    noise.quiet_libraries()
    noise.quiet_libraries()  # idempotent
    for name, prefixes in noise.DROPPED_LOG_RECORDS.items():
        logger = logging.getLogger(name)
        assert sum(isinstance(f, noise.DropMessages) for f in logger.filters) == 1
        collect = _Collect()
        logger.addHandler(collect)
        level = logger.level
        logger.setLevel(logging.DEBUG)
        try:
            for prefix in prefixes:
                logger.warning(prefix + " (details)")
            logger.warning("something the user should see")
        finally:
            logger.removeHandler(collect)
            logger.setLevel(level)
        assert collect.messages == ["something the user should see"], name


def test_mask2former_ignores_only_the_named_library_warnings() -> None:
    from mask2former.noise import quiet_libraries

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn("__array__ implementation doesn't accept a copy keyword, so passing copy=False failed.",
                      DeprecationWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", DeprecationWarning, stacklevel=1)
        warnings.warn("a deprecation in our own code", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a deprecation in our own code"]


def test_lightning_tips_never_reach_the_console_of_a_training_run() -> None:
    """Lightning logs its tips on this logger when a Trainer is built; a real (tiny) Trainer shows it."""
    import lightning as L

    from mask2former.noise import quiet_libraries

    quiet_libraries()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    collect = _Collect()
    logger.addHandler(collect)
    try:
        L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    finally:
        logger.removeHandler(collect)
    assert not any(message.startswith("💡 Tip") for message in collect.messages), collect.messages
    assert any("GPU available" in message for message in collect.messages), collect.messages
