"""`--backend openai` as registered: one request per call (openai_backend), or, with --batch, the
same requests through the Batch API (openai_batch). Choosing here keeps the two modules free of
each other: the batch backend builds on the plain one, never the other way round."""
from __future__ import annotations

from generators.backends.base import BackendSettings
from generators.backends.openai_backend import OpenAIBackend
from generators.backends.openai_batch import OpenAIBatchBackend


class OpenAIAPIBackend(OpenAIBackend):
    """The registry's `openai`: checks as OpenAIBackend, builds the plain or the batch backend."""

    @classmethod
    def create(cls, settings: BackendSettings) -> OpenAIBackend:
        if settings.batch:
            return OpenAIBatchBackend.from_settings(settings)
        return OpenAIBackend.create(settings)
