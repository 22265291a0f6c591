"""secretshim benchmarks (bench/run.sh runs `python3 -m shimbench`).

A small library (table, agent, bench: the fixtures every row shares, util)
and one module per row of the table under rows/; __main__ parses the
options, runs the rows asked for and prints the table. See bench/README.md.
"""
