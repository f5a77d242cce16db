"""One definition per flag: a dataclass field that carries its click option and what it feeds.

A settings dataclass declares each flag once, as a field made by `flag(...)`: its option name,
type, default and help, and which settings it feeds (the backend, the manifest's run settings,
the run fingerprint). `options(cls)` makes the click options from those fields, in field order,
and `from_options(cls, kwargs)` builds the dataclass back from a command's parsed values. So a
command never copies its arguments one by one, and adding a flag touches its field and its use.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, Iterator, TypeVar

import click

T = TypeVar("T")


class Feeds(enum.Flag):
    """Where a flag's value goes besides the dataclass that holds it."""

    NONE = 0
    BACKEND = enum.auto()  # the BackendSettings field of the same name (else a backend knob in `extra`)
    MANIFEST = enum.auto()  # the manifest's run settings: recorded; a rerun may change it and resume
    FINGERPRINT = enum.auto()  # identifies the data: a rerun that changes it is refused


BACKEND, MANIFEST, FINGERPRINT = Feeds.BACKEND, Feeds.MANIFEST, Feeds.FINGERPRINT

# How a flag shows in the manifest: (the options, the field name) -> the entries to record.
Recorder = Callable[[Any, str], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Flag:
    """A field's command-line side: click's declarations and keywords, and what it feeds."""

    decls: tuple[str, ...]  # "--max-retry-after"; empty for a value derived from other flags
    click: dict[str, Any]
    feeds: Feeds = Feeds.NONE
    backend: str | None = None  # the BackendSettings field it fills, where its name differs
    record: Recorder | None = None  # its manifest entries, where not simply {name: value}

    def entries(self, owner: Any, name: str) -> dict[str, Any]:
        return self.record(owner, name) if self.record else {name: getattr(owner, name)}


def flag(*decls: str, default: Any = dataclasses.MISSING, feeds: Feeds = Feeds.NONE, backend: str | None = None,
         record: Recorder | None = None, **click_kwargs: Any) -> Any:
    """A dataclass field declared as a command-line flag. `decls` are click's option names (the
    field's name is the Python name); the rest of the keywords go to click.option. A flag without
    a default is required."""
    if default is dataclasses.MISSING:
        click_kwargs.setdefault("required", True)
    meta = Flag(decls=decls, click=click_kwargs, feeds=feeds, backend=backend, record=record)
    return dataclasses.field(default=default, metadata={"flag": meta})


def same_flag(cls: type, name: str, **click_changes: Any) -> Any:
    """The flag that field `name` of `cls` declares, for another settings dataclass: the same
    option names, type, default, environment variable and feeds (one declaration), with the click
    keywords this command words differently (its help) changed."""
    source = next(f for f in dataclasses.fields(cls) if f.name == name)
    meta: Flag = source.metadata["flag"]
    return dataclasses.field(default=source.default,
                             metadata={"flag": dataclasses.replace(meta, click={**meta.click, **click_changes})})


def derived(default: Any, *, feeds: Feeds = Feeds.NONE) -> Any:
    """A field no flag sets directly (computed from others) that still feeds other settings."""
    return dataclasses.field(default=default, metadata={"flag": Flag(decls=(), click={}, feeds=feeds)})


def flag_fields(cls: type, feeds: Feeds = Feeds.NONE) -> Iterator[tuple[dataclasses.Field, Flag]]:
    """The fields of `cls` that are flags (or derived values) feeding all of `feeds`, in order."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("flag")
        if meta is not None and (meta.feeds & feeds) == feeds:
            yield f, meta


def options(cls: type, *, start: str | None = None,
            stop: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A decorator that adds the click options of `cls`'s flag fields, in field order, keyed by
    the field names; `start`/`stop` (field names) take a slice, so a command can place other
    options (filters, say) between two runs of them."""
    chosen = [(f, meta) for f, meta in flag_fields(cls) if meta.decls]
    names = [f.name for f, _ in chosen]
    chosen = chosen[names.index(start) if start else 0:names.index(stop) if stop else len(chosen)]

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        for f, meta in reversed(chosen):
            default = {} if f.default is dataclasses.MISSING else {"default": f.default}
            func = click.option(*meta.decls, f.name, **default, **meta.click)(func)
        return func

    return decorate


def from_options(cls: type[T], kwargs: dict[str, Any], **given: Any) -> T:
    """`cls` from a command's parsed options: every field whose name is a key is popped (so the
    rest belong to others); `given` supplies the fields built another way."""
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in given]
    return cls(**{name: kwargs.pop(name) for name in names if name in kwargs}, **given)
