"""A new generator is one small Stage plus its command, as docs/architecture.md shows: this one
asks the model to restate each instruction, and the skeleton gives it locking, resume, usage on
every line and the manifest, with no code of its own for any of that."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import click

import prompts
from generators.backends.base import ChatRequest
from generators.core.options import RunOptions, model_options
from generators.core.records import make_record, read_records, stable_id
from generators.core.runner import Item, Kept, Rejected
from generators.core.stage import Stage, run_stage
from tests.helpers import read_jsonl


class RestateStage(Stage):
    name = "restate"

    def __init__(self, opts: RunOptions, out: Path, source: Path) -> None:
        super().__init__(opts, out)
        self.source = source

    def load_inputs(self) -> None:
        self.records = list(read_records(self.source))

    def settings(self) -> dict[str, Any]:
        return {**self.engine_settings(), "template": prompts.template_id("backward")}

    def items(self) -> Iterable[Item]:
        for record in self.records:
            yield Item(id=stable_id("restate", record["id"], self.settings()), source="test", input=record)

    async def work(self, item: Item) -> Kept | Rejected:
        answer = item.input["messages"][-1]["content"]
        result = await self.engine.complete(ChatRequest.of(
            [{"role": "user", "content": prompts.render("backward", output=answer)}]))
        record = make_record(id=item.id, source="test", messages=[{"role": "user", "content": result.text},
                                                                  {"role": "assistant", "content": answer}])
        return Rejected(record, "empty_instruction") if not result.text.strip() else Kept([record])


@click.command("restate")
@click.option("--input", "source", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@model_options
def restate_command(source: Path, out: Path, **kwargs: Any) -> None:
    run_stage(RestateStage(RunOptions.from_kwargs(kwargs), out, source))


def test_a_new_stage_gets_the_whole_run_folder_contract(tmp_path, api_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "messages": [
        {"role": "user", "content": "?"}, {"role": "assistant", "content": f"Answer number {i} about tides."}]}) + "\n"
        for i in range(5)))
    server = api_server()
    out = tmp_path / "out"
    argv = ["--input", str(source), "--out", str(out), "--backend", "openai", "--base-url", server.base_url,
            "--model", "m", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    restate_command.main(argv, standalone_mode=False)
    kept = read_jsonl(out / "data.jsonl")
    assert len(kept) == 5 and all(r["meta"]["usage"]["requests"] == 1 for r in kept)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "restate" and manifest["status"] == "complete"
    assert manifest["usage"]["requests"] == 5 and manifest["fingerprint"]
    assert (out / ".lock").exists()

    restate_command.main(argv, standalone_mode=False)  # a rerun resumes: nothing new to do
    assert server.requests_total == 5 and len(read_jsonl(out / "data.jsonl")) == 5
    again = json.loads((out / "manifest.json").read_text())
    assert again["sessions"] == 2 and again["status"] == "complete"
