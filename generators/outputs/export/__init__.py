"""`gen export`: records of a run (or of the last round of a rounds folder) in the formats other
trainers read, with the provenance no other tool writes: which models, prompts, filters and rounds
made each record.

  source.py      what to export: a run folder, a .jsonl file or a rounds folder → files and runs
  select.py      read the records (kept, and rejected on request) and apply --tag/--source/--min-score
  split.py       --split train=0.98,test=0.02: a seeded split that puts a record in the same place every time
  formats.py     one record → one row of sharegpt, alpaca, openai, messages, dpo or hf
  provenance.py  what the manifests and lineage.json files say about how the data was made
  card.py        README.md: a Hugging Face data set card (YAML configs, licence placeholder, provenance)
  write.py       DEST built in a temp folder and renamed into place; --force to replace
  hub.py         --push-to-hub: token checked up front, one commit with huggingface_hub
  run.py         one export from start to end, records streamed from the input to the split files
  cli.py         the click command: flags checked up front, each mistake one line
"""
