"""`python -m mlmcli` and the `mlm` command."""

import gc

from mlmcli.interrupt import exit_during_startup

# Start-up (numpy, typer, the package) makes some 100,000 objects that live as long as the process.
# At Python's default threshold (700) the collector walks them again and again to find almost nothing:
# on heck2011, 62 young and 5 middle collections, some 6 ms of a 0.12 s fit. Collecting every 50,000
# new objects still bounds what reference cycles can hold in a long run (a bootstrap's refits).
GC_THRESHOLD = 50_000


def run() -> None:
    """Entry point: guard Ctrl-C before importing the command line, then run it."""
    exit_during_startup()
    gc.set_threshold(GC_THRESHOLD)
    from mlmcli.cli import main

    try:
        main()
    finally:
        # The interpreter's last collection at exit walks every object the imports made (some 6 ms)
        # to find almost nothing; frozen objects are skipped. Output files are closed and streams
        # flushed by then, and atexit handlers still run.
        gc.freeze()


if __name__ == "__main__":
    run()
