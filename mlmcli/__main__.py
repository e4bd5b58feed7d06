"""`python -m mlmcli` and the `mlm` command."""

from mlmcli.interrupt import exit_during_startup


def run() -> None:
    """Entry point: guard Ctrl-C before importing the command line, then run it."""
    exit_during_startup()
    from mlmcli.cli import main

    main()


if __name__ == "__main__":
    run()
