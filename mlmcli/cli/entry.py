"""main(): run a command and turn every way it can end into one exit status and at most one line."""

from __future__ import annotations

import os
import sys

import typer

from mlmcli.cli.app import EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, app
from mlmcli.cli.common import _quiet_stdout
from mlmcli.errors import MlmError


def _click_exceptions():
    """typer vendors click from 0.2x on; earlier releases use the click package."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions
    return exceptions


def _command(argv: list[str] | None = None):
    """The click command, with the arguments' help restored.

    typer turns every registered command's signature into click parameters, some 10 ms for all of them;
    when the first argument names a command, only that one is built (the group's own options and
    dispatch are the same, and an unknown name, help or completion builds them all).

    click 8.5 gave every Parameter a `help` attribute which typer 0.19's TyperArgument overwrites
    with None, so DATA and FORMULA lost their help text; put it back from the declarations.
    """
    import copy

    from typer.main import get_command
    from typer.utils import get_params_from_function

    infos = app.registered_commands
    first = (sys.argv[1:] if argv is None else argv)[:1]
    chosen = [info for info in infos if first and _name(info) == first[0]]
    if chosen and "_MLM_COMPLETE" not in os.environ:
        view = copy.copy(app)
        view.registered_commands = chosen
        command = get_command(view)
    else:
        command = get_command(app)
    subcommands = getattr(command, "commands", {})
    for info in infos:
        sub = subcommands.get(_name(info))
        if sub is None:
            continue
        declared = get_params_from_function(info.callback)
        for param in sub.params:
            meta = declared.get(param.name or "")
            if meta is not None and getattr(param, "help", None) is None:
                param.help = getattr(meta.default, "help", None)
    return command


def _name(info) -> str:
    """A registered command's name on the command line."""
    return info.name or info.callback.__name__.replace("_", "-")


def _os_error_message(e: OSError) -> str:
    import errno

    what = e.filename if e.filename is not None else "standard output"
    if e.errno == errno.ENOSPC:
        return f"cannot write {what}: no space left on device"
    return f"{what}: {e.strerror or e}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: exit status 0, 1 (a bug), 2 (bad input or usage), 3 (--strict warnings), 130 (interrupted),
    143 (terminated).

    `argv` (default: sys.argv[1:]) lets tests run the command in process.
    """
    import warnings

    from mlmcli.cli.streams import guarded_streams
    from mlmcli.interrupt import raise_keyboard_interrupt

    # numpy's overflow and invalid-value notes are not for users: results are checked instead
    warnings.simplefilter("ignore", RuntimeWarning)
    raise_keyboard_interrupt()
    with guarded_streams():
        code = _run(argv)
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    """The command, and every way it can end as an exit status and at most one line on stderr."""
    from mlmcli.interrupt import EXIT_TERMINATED, terminated

    exc = _click_exceptions()
    code = EXIT_OK
    try:
        result = _command(argv).main(args=argv, prog_name="mlm", standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except MlmError as e:
        sys.stderr.write(f"mlm: error: {e}\n")
        code = EXIT_USAGE
    except exc.NoArgsIsHelpError as e:
        try:
            sys.stdout.write(e.ctx.get_help() + "\n")
        except MlmError as closed:
            sys.stderr.write(f"mlm: error: {closed}\n")
            code = EXIT_USAGE
    except exc.UsageError as e:
        sys.stderr.write(f"mlm: error: {e.format_message()}\n")
        code = EXIT_USAGE
    except exc.ClickException as e:
        sys.stderr.write(f"mlm: error: {e.format_message()}\n")
        code = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except typer.Exit as e:
        code = e.exit_code
    except BrokenPipeError:
        # the reader (head, less) has seen enough: not a failure
        _quiet_stdout()
    except OSError as e:
        sys.stderr.write(f"mlm: error: {_os_error_message(e)}\n")
        code = EXIT_USAGE
    except RecursionError:
        sys.stderr.write("mlm: error: the input is nested too deeply to process\n")
        code = EXIT_USAGE
    except MemoryError:
        sys.stderr.write("mlm: error: not enough memory for this model or picture\n")
        code = EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("MLM_TRACEBACK"):
            import traceback

            traceback.print_exc()
        from mlmcli import __version__

        sys.stderr.write(
            f"mlm: internal error: {type(e).__name__}: {e} (a bug in mlm {__version__}: please "
            "report it with the command and data that caused it; MLM_TRACEBACK=1 shows the "
            "traceback)\n"
        )
        code = EXIT_BUG
    if code == EXIT_INTERRUPTED and terminated():  # click reports SIGTERM's unwinding as 130 too
        code = EXIT_TERMINATED
    if code == EXIT_INTERRUPTED:
        sys.stderr.write("mlm: interrupted\n")
    elif code == EXIT_TERMINATED:
        sys.stderr.write("mlm: terminated\n")
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as e:
        sys.stderr.write(f"mlm: error: {_os_error_message(e)}\n")
        code = code or EXIT_USAGE
    return code
