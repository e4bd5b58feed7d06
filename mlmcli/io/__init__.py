"""Reading data files into the Frame the model is built from, as R's readers do.

Imports run one way, from the bottom up: source (bytes, compression, separator) and csv_text
(splitting text); frame (Frame, Factor, R's type.convert and make.names); typed (columns that
arrive typed); the engines csv_python, csv_fast (pandas), csv_arrow (pyarrow), parquet
(Parquet, Feather), labelled (SPSS, Stata), excel; csv (read.csv, choosing an engine); and
formats (which reader a file's name calls for) on top.
"""
