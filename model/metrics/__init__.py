"""Metrics of the SAVGAN paper (AACD, Flips/seq, Res18-cosTS, FVD) and our FD-own.

One module per metric; `features` extracts the classifier's per-frame labels and
features once per video set so that Flips, cosTS and FD-own share one pass, and
`evaluate` ties generation, real-data floors and the metrics together for the CLI and
the worker.
"""
