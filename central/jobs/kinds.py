"""Which handler runs each kind of job."""

from __future__ import annotations

from central.jobs import badge_job, export_job
from central.jobs.runner import Handler

HANDLERS: dict[str, Handler] = {
    badge_job.KIND: badge_job.print_badges,
    export_job.KIND: export_job.run_export,
}
