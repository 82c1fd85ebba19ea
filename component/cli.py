"""The ``netherfield`` command: ``netherfield --version``.

Running the component is ``twistd -n netherfield --config FILE``; this
command holds what an operator needs besides.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from component import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netherfield",
        description="XMPP external components (XEP-0114). Run them with: twistd -n netherfield --config FILE",
    )
    parser.add_argument("--version", action="version", version=f"Netherfield {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with *argv* (default: the process's arguments); return the exit status."""
    _parser().parse_args(argv)
    _parser().print_help()
    return 0
