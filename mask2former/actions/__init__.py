"""The `mask2former train | evaluate | inference -e spec.yaml [dotted overrides]` actions."""
