"""--push-to-hub REPO: the export folder as one commit to a data set repo, with huggingface_hub.

Checked before anything is read or written: the repo id's shape, offline mode, and a token
(HF_TOKEN or a saved login), so a push that cannot happen does not cost an export first. The
endpoint is huggingface_hub's (HF_ENDPOINT), which is also how the tests point it at a loopback
server. Files an earlier push left in the repo are not deleted: the card's configs name this
export's split files, so stale ones are not loaded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from generators.core.errors import FatalError, UsageError

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def check(repo: str) -> str:
    """The token to push with, or one UsageError saying what is missing."""
    if not REPO_ID.fullmatch(repo) or ".." in repo:
        raise UsageError(f"--push-to-hub {repo!r}: give a data set repo id as NAMESPACE/NAME, e.g. you/my-data")
    from huggingface_hub import constants, get_token

    if constants.is_offline_mode():
        raise UsageError("--push-to-hub: HF_HUB_OFFLINE is set, so nothing can be uploaded; "
                         "unset it, or drop --push-to-hub")
    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise UsageError("--push-to-hub needs a Hugging Face token and none was found: set HF_TOKEN or "
                         "run `hf auth login` (nothing was exported)")
    return token


def push(folder: Path, repo: str, token: str, *, private: bool = False) -> str:
    """Create the data set repo if needed and commit every file of `folder`; returns its URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                  for p in files]
    try:
        url = api.create_repo(repo, repo_type="dataset", private=private or None, exist_ok=True)
        api.create_commit(repo, repo_type="dataset", operations=operations,
                          commit_message=f"baleen gen export: {len(files)} files")
    except Exception as exc:  # HTTP errors, refused tokens, unreachable endpoint: one line, exit 1
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise FatalError(f"--push-to-hub {repo}: upload failed ({detail}); the export is in {folder}; "
                         f"push it again with: hf upload {repo} {folder} --repo-type dataset") from None
    return str(url)
