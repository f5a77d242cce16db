"""`gen view`: a local web page over a run folder or a folder of rounds.

runs.py finds the runs (the layouts `gen report` reads), index.py reads every line once into a
compact columnar index (byte offsets plus the small fields people filter on), diff.py compares the
curated records of consecutive rounds, search.py finds text without holding it in memory,
query.py filters and pages the index, data.py ties them together, server.py serves the JSON API
and the static page, cli.py is the command.
"""
