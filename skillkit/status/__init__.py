"""`status.json`, the trainer's progress log: the trainer's writer and the engine's follower."""
