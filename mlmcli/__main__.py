"""`python -m mlmcli` and the `mlm` command."""

from mlmcli.interrupt import exit_during_startup


def run() -> None:
    """Entry point: guard Ctrl-C before importing the command line, then run it."""
    exit_during_startup()
    from mlmcli.cli import main

    try:
        main()
    finally:
        # The interpreter's last garbage collection at exit walks every object the imports made
        # (numpy's, typer's, ours: some 6 ms) to find almost nothing; frozen objects are skipped.
        # Files and streams are closed or flushed by then, and atexit handlers still run.
        import gc

        gc.freeze()


if __name__ == "__main__":
    run()
