"""The fitting engine: penalized least squares on a blocked sparse Cholesky factor.

terms.py (a term's structure) -> crossprod.py (the blocks of A, one pass over the rows) ->
blocks.py (block types and kernels) -> factor.py (L(theta), the criterion's pieces) ->
selinv.py (conditional variances) -> fit.py (optimizing theta, lme4's checks),
satterthwaite.py (denominator df) and vc_information.py -> kenward_roger.py (Kenward-Roger's
adjusted covariance and df).
"""
