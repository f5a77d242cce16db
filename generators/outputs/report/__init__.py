"""`gen report`: a Markdown report with plots for any stage's folder, or for a folder of rounds.
It reads only manifest.json and the JSONL records, so it works for every stage alike."""
