"""Periodic work of the centre under database leases, one process at a time (see runner.py)."""

from central.duties.lease import Lease, LeaseLost
from central.duties.runner import Duty, DutyRunner, DutyStatus

__all__ = ["Duty", "DutyRunner", "DutyStatus", "Lease", "LeaseLost"]
