"""``oauth-vault``, the operator's command line (see :mod:`.main`).

- :mod:`.main`: the parser, the ``db`` and ``keys`` commands, and the dispatch;
- :mod:`.credentials`: ``credentials refresh`` (the sweep) and ``credentials show``;
- :mod:`.clients`: the ``clients`` and ``audit`` commands (service access);
- :mod:`._args`: argument types (durations, bounded counts); :mod:`._words`: plurals, times;
- :mod:`.progress`: the progress bar on stderr.

The long-running work itself (key rotation, the refresh sweep) is :mod:`oauth_vault_mw.jobs`,
which host apps may call from their own scheduler.
"""

from __future__ import annotations

from ._args import parse_duration as parse_duration
from .main import main as main

__all__ = ["main", "parse_duration"]
