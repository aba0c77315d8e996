"""Background jobs: long work started from a page or the CLI, run by any process's worker.

store.py (the jobs table: submit, claim, progress, end, leases, retention), runner.py (running
one claimed job: its context, result file and end), worker.py (the thread that claims and runs
jobs, each in a child process), kinds.py (which handler runs each kind), badge_job.py (badge
sheets), export_job.py (exports).
"""
