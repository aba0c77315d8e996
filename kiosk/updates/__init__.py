"""Signed updates with rollback (docs/decisions.md, "Kiosk updates"): the layout of installed
versions, installing a verified release into a venv of its own, the trial of a new version with
its switch back, and the worker that does it when the kiosk is quiet."""
