"""What kiosks send the centre, and how it is taken in.

push.py checks and stores a batch of events, chain.py walks each kiosk's hash chain over them,
clocks.py takes clock samples and corrects the times of a boot once its offset is known, and
heartbeat.py keeps each kiosk's latest report. Times are stored as naive UTC (central/db/schema.py).
"""
