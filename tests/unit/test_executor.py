"""The parts of --executor ray that need no Ray: corpus parts, prechecked segments deciding as the
one-process pipeline does, shipping a stage to a worker, and the flags refused up front."""
from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

from generators.backends.base import Backend, BackendSettings, ChatRequest, ChatResult
from generators.inputs.corpus import SegmentFilterConfig, SegmentPipeline, iter_documents
from generators.inputs.corpus.filters import precheck_part
from generators.inputs.corpus.readers import iter_document_part
from generators.core.engine import Engine
from generators.core.prices import Price
from generators.executors.shipping import dumps_stage, loads_stage
from generators.core.options import RunOptions, build_engine, check_options, make_backend
from generators.core.errors import UsageError
from generators.core.store import RunStore
from tests.backtranslate_fixtures import page, plain_pages, write_corpus
from tests.helpers import assert_one_line_error, run_gen


def messy_corpus(path: Path) -> Path:
    """Pages whose sections every segment filter meets: copies, near copies, boilerplate, short."""
    pages = plain_pages(9)
    first = "<h2>" + pages[0].split("<h2>")[1].split("<footer>")[0]
    near = first.replace("</p>", " And one more sentence at the very end of it.</p>", 1)
    pages[4] = pages[4].replace("<footer>", first + "<footer>")  # exact copy of page 0's first section
    pages[7] = pages[7].replace("<footer>", near + "<footer>")   # near copy
    pages.append(page(50, ["ADVERTISEMENT AND MORE", "Quick links", "Fine topic"], seed=3))
    pages.append("<html><body><h2>Short one</h2><p>Too short to keep.</p></body></html>")
    return write_corpus(path, pages)


def test_parts_of_a_shard_are_disjoint_cover_it_and_keep_source_indexes(tmp_path):
    corpus = str(write_corpus(tmp_path / "c.jsonl", plain_pages(11, sections=1)))
    shard = [d.id for d in iter_documents(corpus, shard=(1, 3))]
    parts = [list(iter_document_part(corpus, shard=(1, 3), part=(j, 2))) for j in range(2)]
    indexes = sorted(i for part in parts for i, _ in part)
    assert indexes == [1, 4, 7, 10]
    assert sorted(d.id for part in parts for _, d in part) == sorted(shard)
    assert all(a < b for part in parts for (a, _), (b, _) in zip(part, part[1:]))


@pytest.mark.parametrize("parts", [1, 3])
def test_prechecked_parts_keep_and_count_what_the_one_process_pipeline_does(tmp_path, parts):
    corpus = str(messy_corpus(tmp_path / "c.jsonl"))
    config = SegmentFilterConfig()
    local = SegmentPipeline(config)
    kept_local = [s.text for s in local.run(iter_documents(corpus))]
    batches = [entry for j in range(parts)
               for batch in precheck_part(corpus, corpus_dir=None, field=None, shard=None, part=(j, parts),
                                          config=config, batch=2)
               for entry in batch]
    merged = [prechecked for _, prechecked in sorted(batches, key=lambda entry: entry[0])]
    parallel = SegmentPipeline(config)
    kept_parallel = [s.text for s in parallel.run_prechecked(merged)]
    assert kept_parallel == kept_local
    assert parallel.summary() == local.summary()
    rejected = local.summary()["rejected"]
    assert rejected["duplicate"] and rejected["near_duplicate"] and rejected["too_short"]
    assert rejected["caps_header"] and rejected["boilerplate_header"]


def test_prechecks_travel_between_processes(tmp_path):
    corpus = str(messy_corpus(tmp_path / "c.jsonl"))
    document = next(iter_documents(corpus))
    pipeline = SegmentPipeline(SegmentFilterConfig())
    pre = pipeline.precheck(document)
    assert all(p.reason is None and p.candidate.sketch.values for p in pre)  # worked out where it was read
    again = pickle.loads(pickle.dumps(pre))
    fresh = SegmentPipeline(SegmentFilterConfig())
    assert [fresh.decide(p) for p in again] == [None, None]
    assert [fresh.decide(p) for p in pre] == ["duplicate", "duplicate"]


class Echo(Backend):
    """A backend with a lock inside (cannot be pickled as is), answering with the prompt."""

    name = "echo-test"

    def __init__(self) -> None:
        import threading
        self.lock = threading.Lock()
        self.model = "echo"

    @classmethod
    def create(cls, settings: BackendSettings) -> "Echo":
        return cls()

    async def complete(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text=request.messages[-1][1], finish="stop", prompt_tokens=1, completion_tokens=1)


class Holder:
    """A stand-in stage: an engine twice (attribute and closure), a store, a stream of input."""

    def __init__(self, engine: Engine, store: RunStore) -> None:
        self.engine = engine
        self.engines = [engine]
        self.store = store
        self.stream = iter([1, 2, 3])
        self.pipeline = SegmentPipeline(SegmentFilterConfig())
        self.ask = lambda text: engine.complete(ChatRequest.of([{"role": "user", "content": text}]))


def test_a_shipped_stage_gets_fresh_engines_and_leaves_driver_objects_behind(tmp_path):
    backend = Echo()
    backend.settings = BackendSettings(model="echo")
    engine = Engine(backend)
    engine.accounting.max_tokens = 1  # a budget: the driver's, never the worker's
    engine.accounting.price = Price(1.0, 2.0)  # the price: the driver's, so each line's cost is priced
    store = RunStore(tmp_path / "run", stage="t", settings={})
    shipped = loads_stage(dumps_stage(Holder(engine, store)))
    store.close()
    assert shipped.engine is not engine and shipped.engines[0] is shipped.engine
    assert shipped.engine.accounting.max_tokens is None and shipped.engine.backend.lock is not backend.lock
    assert shipped.engine.accounting.price == Price(1.0, 2.0)
    assert shipped.store is None and shipped.stream is None and shipped.pipeline is None
    assert asyncio.run(shipped.ask("hello")).text == "hello"


def test_the_response_cache_travels_as_its_path(tmp_path, tiny_model_dir):
    opts = RunOptions(backend="hf", model=str(tiny_model_dir), concurrency=2, max_concurrency=8, batch_max_lines=10,
                      batch_poll_interval=1.0, cache_dir=tmp_path, timeout=1.0, retries=0, max_retry_after=1.0,
                      no_progress=True)
    engine = build_engine(opts, make_backend(opts))
    shipped = loads_stage(dumps_stage(engine))
    assert shipped.cache.path == engine.cache.path and shipped.cache is not engine.cache
    assert shipped.backend.settings == engine.backend.settings and shipped.model == engine.model
    engine.cache.close()
    shipped.cache.close()


def options(**change) -> RunOptions:
    base = dict(backend="openai", model="m", base_url="http://127.0.0.1:1/v1", concurrency=2, max_concurrency=8,
                batch_max_lines=10, batch_poll_interval=1.0, no_cache=True, timeout=1.0, retries=0,
                max_retry_after=1.0, no_progress=True)
    return RunOptions.from_kwargs({**base, **change})


@pytest.mark.parametrize("change,needle", [
    ({"executor": "ray"}, "--executor ray runs copies"),
    ({"workers": 2}, "add --executor ray"),
    ({"backend": "hf", "model": None, "tensor_parallel_size": 2}, "--tensor-parallel-size"),
    ({"backend": "hf", "model": None, "data_parallel_size": 2}, "--data-parallel-size"),
])
def test_flags_that_cannot_work_are_refused(change, needle):
    with pytest.raises(UsageError, match=needle):
        check_options(options(**change))


def test_cli_refuses_parallel_flags_for_a_backend_that_cannot_in_one_line(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(1))
    proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "hf", "--tensor-parallel-size", "2",
                   "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "--tensor-parallel-size", "--backend vllm")
    assert not (tmp_path / "out").exists()


def test_prep_workers_without_ray_is_refused_in_one_line(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(1))
    proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "hf", "--prep-workers", "2",
                   "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "--prep-workers", "--executor ray")
    assert not (tmp_path / "out").exists()


def test_vllm_parallel_flags_reach_the_engine_arguments():
    from generators.backends.base import BackendSettings
    from generators.backends.vllm_backend import VLLMBackend

    settings = BackendSettings(extra=(("data_parallel_size", 2), ("tensor_parallel_size", 4)))
    backend = VLLMBackend.build("/models/base", settings)
    assert backend.engine_kwargs == {"tensor_parallel_size": 4, "data_parallel_size": 2,
                                     "distributed_executor_backend": "mp"}
    assert VLLMBackend.build("/models/base", BackendSettings()).engine_kwargs == {}


@pytest.mark.vllm
def test_vllm_engine_arguments_carry_tensor_parallelism():
    from generators.backends.base import BackendSettings
    from generators.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend.build("/models/base", BackendSettings(extra=(("tensor_parallel_size", 2),)))
    args = backend.engine_args()
    assert args["tensor_parallel_size"] == 2 and args["distributed_executor_backend"] == "mp"
    assert args["enable_prefix_caching"] is True  # the requests of a dialog share their prefix
