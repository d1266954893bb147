"""Entry point: parse, run the one handler the command names, map errors to exit codes.

Exit codes: 0 success; 2 usage or validation error (the input is wrong); 1 runtime failure
(a tool or the cluster failed, or a check failed); 130 interrupted. Data (YAML, JSON, bundles)
goes to stdout; messages, warnings and progress go to stderr.
"""

from __future__ import annotations

import importlib
import sys

from .. import __version__
from ..base.errors import LlmdctlError, mask_tokens
from .parser import UsageError, build_parser


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _run(argv: list[str]) -> int:
    parser = build_parser(argv)
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the command's own parser, so the usage shown is that command's
            getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse after --help
        return int(exc.code or 0)
    if args.version:
        sys.stdout.write(f"llmdctl {__version__}\n")
        return 0
    args.argv = [a for a in argv if a != "--debug"]  # what the user typed, for commands that record it
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    # Only the module of the command being run is imported: render never loads the cluster code.
    module, function = handler.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)(args) or 0


def _asks_for_json(args: list[str]) -> bool:
    """-o json / --output json / -ojson / --output=json anywhere: errors come as JSON too."""
    for i, a in enumerate(args):
        if a in ("-o", "--output") and i + 1 < len(args) and args[i + 1] == "json":
            return True
        if a in ("-ojson", "--output=json"):
            return True
    return False


def _report_error(code: int, message: str, hint: str | None, as_json: bool) -> int:
    """Messages never carry a token; with -o json the error is a JSON object on stdout as well."""
    message, hint = mask_tokens(message), mask_tokens(hint) if hint else None
    _err(f"error: {message}")
    if hint:
        _err(f"hint: {hint}")
    if as_json:
        import json  # error path only

        sys.stdout.write(json.dumps({"error": {"code": code, "message": message, "hint": hint}}, indent=2) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """The one place that turns errors into messages and exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]  # accepted anywhere on the line, not only first
    json_errors = _asks_for_json(args)
    try:
        code = _run(args)
    except LlmdctlError as exc:
        if debug:
            raise
        if isinstance(exc, UsageError):
            _err(exc.usage)
        code = _report_error(exc.exit_code, exc.message, exc.hint, json_errors)
    except KeyboardInterrupt:
        _err("interrupted")
        code = 130
    except RecursionError:  # a structure nested deeper than any real values file
        code = _report_error(2, "an input is nested too deeply to be a values, spec or catalog file", None, json_errors)
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: say so plainly, point at --debug
        if debug:
            raise
        code = _report_error(1, f"internal error: {type(exc).__name__}: {exc}",
                             "this is a bug in llmdctl; rerun with --debug for a traceback and report it", json_errors)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
