"""The kilobox command line: a thin layer over the library.

One module per command (``kilobox/cli/<name>_cmd.py``) exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the
command being run is imported, and command modules import heavy libraries
inside ``run`` — ``kilobox --version`` imports nothing but this package.
:mod:`argparse` itself is imported only when a parser is built: a command
may offer ``fast_main(argv)`` for its common spellings (``kilobox copy SRC
DST``, a warm ``kilobox run``), falling back to the parser for anything else.

Errors become exit codes here and only here (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import importlib
import os
import sys

from .. import __version__
from .. import errors as E

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import argparse

#: command name → module (under kilobox.cli)
COMMANDS: dict[str, str] = {
    "build": "build_cmd",
    "init": "init_cmd",
    "copy": "copy_cmd",
    "digest": "digest_cmd",
    "inspect": "inspect_cmd",
    "unpack": "unpack_cmd",
    "tags": "tags_cmd",
    "prune": "prune_cmd",
    "login": "login_cmd",
    "logout": "logout_cmd",
    "run": "run_cmd",
    "ps": "ps_cmd",
    "logs": "logs_cmd",
    "stop": "stop_cmd",
    "rm": "rm_cmd",
    "bench": "bench_cmd",
    "audit": "audit_cmd",
    "sbom": "sbom_cmd",
    "diff": "diff_cmd",
    "compare": "compare_cmd",
    "slim": "slim_cmd",
}

#: commands whose module offers ``fast_main(argv) -> int | None``: it handles the common
#: case without building an argparse parser, and returns None to fall back to the full parser
#: (warm ``kilobox run``: the cold-start path; ``kilobox copy SRC DST``: the micro-copy path)
FAST_PATHS = ("run", "copy")

#: exception family → exit code (first match wins; order from specific to general)
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (E.PolicyViolation, 1),
    (E.UsageError, 2),
    (E.ReferenceError_, 2),
    (E.BudgetExceeded, 8),
    (E.BuildError, 7),
    (E.NotFound, 3),
    (E.DigestMismatch, 4),
    (E.FormatError, 4),
    (E.AuthError, 6),
    (E.RegistryError, 5),
    (E.StoreError, 11),
    (E.AuditError, 12),
    (E.ToolMissing, 127),
    (E.RunError, 125),
    (E.KiloboxError, 70),
]


def exit_code_for(exc: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 70


def _help_width() -> int:
    """What argparse computes with :func:`shutil.get_terminal_size` (without importing shutil,
    which loads the compression modules: argparse makes a formatter for every argument)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


_parser_class: type | None = None


def _Parser(**kw: object) -> "argparse.ArgumentParser":  # noqa: N802 - used as the parser class
    """An :class:`argparse.ArgumentParser` whose errors are :class:`~kilobox.errors.UsageError`
    (argparse is imported on first use)."""
    global _parser_class
    if _parser_class is None:
        import argparse

        class Parser(argparse.ArgumentParser):
            def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
                raise E.UsageError(f"{self.prog}: {message}", hint=f"see: {self.prog} --help")

            def _get_formatter(self) -> argparse.HelpFormatter:
                return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]

        _parser_class = Parser
    return _parser_class(**kw)


def _load(name: str):
    return importlib.import_module(f"kilobox.cli.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> "argparse.ArgumentParser":
    """The argument parser; with *only*, just that command (its module imported, no other)."""
    import argparse
    parser = _Parser(prog="kilobox", description="Build, ship, run, audit and slim micro-containers.")
    parser.add_argument("--version", action="version", version=f"kilobox {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = _load(name)
        except ModuleNotFoundError:
            continue  # command not installed in this build
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def _exit_now(rc: int) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
    """End the process without the interpreter's teardown (freeing every module and object:
    ~4 ms, a tenth of a micro image's copy). Only after a command has finished everything it
    writes (files closed and fsynced, threads joined); stdout and stderr are flushed here."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None            # the console script (not a call from Python code)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":  # the fast path: no command module is imported
        print(f"kilobox {__version__}")
        return 0
    debug = "--debug" in argv or os.environ.get("KILOBOX_DEBUG") == "1"
    only = next((a for a in argv if not a.startswith("-")), None)
    only = only if only in COMMANDS else None
    try:
        if argv and argv[0] in FAST_PATHS:  # the common case of a hot command, without argparse
            rc = _load(argv[0]).fast_main(argv)
            if rc is not None:
                if as_program:
                    _exit_now(rc)
                return rc
        args = build_parser(only).parse_args(argv)
        if not getattr(args, "_module", None):
            build_parser().print_help()
            return 2
        rc = args._module.run(args)
        return int(rc or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (| head): not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except E.KiloboxError as e:
        if debug:
            import traceback
            traceback.print_exc()
        msg = f"kilobox: error: {e.message}"
        if e.hint:
            msg += f" (hint: {e.hint})"
        print(msg, file=sys.stderr)
        return exit_code_for(e)
    except Exception as e:  # a bug: say so in one line, traceback only with --debug
        if debug:
            raise
        print(f"kilobox: internal error: {type(e).__name__}: {e} (run with --debug for a traceback)", file=sys.stderr)
        return 70
