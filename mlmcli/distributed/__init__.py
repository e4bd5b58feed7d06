"""--engine dask: the same fit from data partitioned across a dask.distributed cluster.

A linear mixed model needs its rows only through sums (the blocks of A = [Z X y]'[Z X y]), which
add over any partition of the rows.  Pass 1 finds the factor levels, pass 2 sums the blocks with a
tree reduction, and the fit runs on the client from the sums; a last pass over the rows gives the
scaled-residual quantiles.  A GLMM (glmm.py, glmm_fit.py) keeps its partitions on the workers and
sums them once per PIRLS iteration, its optimization on the client.  Nothing here is imported
unless --engine dask is asked for.
"""
