"""The async shell: the vault, login and sessions, service access, the audit trail and the
provider client, doing I/O in the order ``core`` decides. ``_sync/`` is generated from here
by ``scripts/unasync.py``: edit these files, never those."""
