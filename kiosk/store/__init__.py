"""The kiosk's local store: the durable event log and the failed-scan log.

from kiosk.store import EventLog, StoreConfig
log = EventLog(instance / "log", StoreConfig())
event = log.append(fields)        # durable (fsync'd) when it returns
log.pending(100); log.acknowledge(seq); log.pending_count()
"""

from kiosk.store.config import StoreConfig
from kiosk.store.damage import RecoveryReport
from kiosk.store.diskio import DiskIO, StoreWriteError, describe_os_error
from kiosk.store.failed import FailedScan, FailedScanLog
from kiosk.store.folder import StoreError, StoreLocked
from kiosk.store.index import EventSummary
from kiosk.store.log import EventLog
from kiosk.store.verify import VerifyReport, verify_log

__all__ = [
    "DiskIO",
    "EventLog",
    "EventSummary",
    "FailedScan",
    "FailedScanLog",
    "RecoveryReport",
    "StoreConfig",
    "StoreError",
    "StoreLocked",
    "StoreWriteError",
    "VerifyReport",
    "describe_os_error",
    "verify_log",
]
