"""The `streamwatch` command.

Each box of the data flow contributes its own subcommands through a `register(subparsers)`
function in its package's `cli.py`; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from streamwatch.errors import StreamwatchError

# Packages whose `cli.register` adds subcommands, in the order `--help` lists them.
_COMMAND_MODULES = (
    "infra.cli",
    "streamwatch.topics_cli",
    "ops.demo",
    "ingest.cli",
    "platform_stub.cli",
    "streams.cli",
    "indexers.cli",
    "ops.cli",
    "support_console.cli",
    "dashboards.cli",
    "players.cli",
    "alerts.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="streamwatch",
        description="Observability and event analytics for streaming video.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A box not built yet contributes no commands; anything else is a real error.
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamwatch` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return handler(args) or 0
    except StreamwatchError as exc:
        print(f"streamwatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
