"""The command line: a skin that parses options, calls one core or effect function per command
and maps its result and errors to output and exit codes."""

from .main import main

__all__ = ["main"]
