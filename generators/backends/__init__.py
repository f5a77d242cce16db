"""Model access for every stage: one async request/result interface over several backends."""
from generators.backends.base import Backend, ChatRequest, ChatResult, RequestFailed, Sampling

__all__ = ["Backend", "ChatRequest", "ChatResult", "RequestFailed", "Sampling"]
