"""``oauth-vault``, the operator's command line (see :mod:`.main`).

- :mod:`.main`: the parser and the ``db``, ``keys`` and ``credentials`` commands;
- :mod:`.clients`: the ``clients`` and ``audit`` commands (service access);
- :mod:`.progress`: the progress bar on stderr.

The long-running work itself (key rotation, the refresh sweep) is :mod:`oauth_vault_mw.jobs`,
which host apps may call from their own scheduler.
"""

from __future__ import annotations

from .main import main as main
from .main import parse_duration as parse_duration

__all__ = ["main", "parse_duration"]
