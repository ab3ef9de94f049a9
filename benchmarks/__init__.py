"""Scripts behind ``make bench``; results go to ``benchmarks/results/``."""
