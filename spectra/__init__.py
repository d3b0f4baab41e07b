"""spectra: singular vectors of sums of rectangular random matrices; the extensive spike model.

Landau, Mel, Ganguli (2023), arXiv 2306.00340. See spectra/README.md.
"""
