"""`gen eval`: how good is what baleen makes? Held-out checks of the backward model (backward),
of the rater (curation) and of one model against another (winrate). Each is a stage on the
generation skeleton, so its folder locks, resumes and never repeats a request."""
