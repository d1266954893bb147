"""Entry point: parse, run the one handler the command names, map errors to exit codes.

Exit codes: 0 success; 2 usage or validation error (the input is wrong); 1 runtime failure
(a tool or the cluster failed, or a check failed); 130 interrupted. Data (YAML, JSON, bundles)
goes to stdout; messages, warnings and progress go to stderr.
"""

from __future__ import annotations

import importlib
import sys

from .. import __version__
from ..base.errors import LlmdctlError
from .parser import build_parser


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _run(argv: list[str]) -> int:
    parser = build_parser(argv)
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the command's own parser, so the usage shown is that command's
            getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    if args.version:
        sys.stdout.write(f"llmdctl {__version__}\n")
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    # Only the module of the command being run is imported: render never loads the cluster code.
    module, function = handler.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)(args) or 0


def main(argv: list[str] | None = None) -> int:
    """The one place that turns errors into messages and exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]  # accepted anywhere on the line, not only first
    try:
        code = _run(args)
    except LlmdctlError as exc:
        if debug:
            raise
        _err(f"error: {exc.message}")
        if exc.hint:
            _err(f"hint: {exc.hint}")
        code = exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: say so plainly, point at --debug
        if debug:
            raise
        _err(f"internal error: {type(exc).__name__}: {exc}")
        _err("this is a bug in llmdctl; rerun with --debug for a traceback and report it")
        code = 1
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
