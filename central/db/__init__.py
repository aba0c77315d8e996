"""The central store: its tables (schema), its engine, and the bulk writes of the hot paths.

Nothing is imported here, so `central.db.schema` can be imported without anything else.
"""
