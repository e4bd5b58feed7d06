import os

# as the command line does (mlmcli/cli/__init__.py): single-threaded BLAS is faster for our block sizes
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
