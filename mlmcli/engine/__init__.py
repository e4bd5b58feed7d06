"""The fitting engine: penalized least squares on a blocked sparse Cholesky factor.

terms.py (a term's structure) -> crossprod.py (the blocks of A, one pass over the rows) ->
blocks.py (the block protocol, the leading terms' block types, kernels), tail.py (the crossed
terms'), small_term.py (the closed form) -> factor.py (L(theta) and its pieces) -> response.py
(the criterion from the pieces) -> fit.py (optimizing theta, lme4's checks); selinv.py
(conditional variances), satterthwaite.py (denominator df) and vc_information.py ->
kenward_roger.py (Kenward-Roger's adjusted covariance and df).
"""
