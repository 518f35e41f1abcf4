"""One trial: its trainer subprocess (`runner`), its record (`record`), failure classes and resume rules."""
