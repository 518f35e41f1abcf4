"""The shared kit under both sides of the engine–trainer contract.

`hpo` (the engine) and `mask2former` (the trainer) are siblings: both import `skillkit` and never each
other, and `skillkit` imports neither (tests/skillkit/test_import_boundaries.py). What lives here is what
both sides must agree on, written once: the error root and exit codes, the status.json line format with
its writer and follower, checkpoint and workspace file names, redaction, the `math_cond` grammar, the spec
loader/validator, the skill-dir reader and the safe archive extractor.
"""
