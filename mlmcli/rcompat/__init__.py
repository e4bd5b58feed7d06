"""R's conventions that output and input share: number and text formatting (rformat), string
escapes (escape), sorting and as.character (rsort), and the t, chi-square and F tails
(distributions).  These modules import nothing else from mlmcli, so every layer may use them.
"""
