"""Stays: every kiosk's records of a cadre paired into arrival-departure pairs by the centre.

pairing.py holds the rule (no database), store.py keeps the `stays` table from the events,
refresher.py is the thread that works through the queue ingest leaves, queries.py is what the
pages read.
"""
