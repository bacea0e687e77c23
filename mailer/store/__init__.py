"""The store: models, the database engine, migrations, subscribers, the ledger and stats.

Imports ``domain``, ``errors`` and ``config`` only; never a transport, never the web or CLI.
"""
