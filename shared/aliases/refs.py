"""References to a model in a prediction route: its id, or its name with an optional `@alias`
or `@v<version>` (docs/aliases.md). Parsing only: what a name points at is web/aliases/."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from shared.aliases.table import ALIAS_PATTERN
from shared.errors import NotFound
from shared.schemas.models import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
# `name@v3` is always version 3, so no alias may look like one.
VERSION_PATTERN = r"^v([0-9]{1,9})$"
_VERSION = re.compile(VERSION_PATTERN)
LATEST = "latest"


@dataclass(frozen=True)
class NameRef:
    """`name` (alias and version None), `name@alias` or `name@v<version>`."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@v{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse(ref: str) -> uuid.UUID | NameRef:
    """A model id, or a reference by name."""
    if len(ref) == 36:
        try:
            return uuid.UUID(ref)
        except ValueError:
            pass  # a 36-character name
    return parse_name(ref)


def parse_name(ref: str) -> NameRef:
    """A reference by name (`name`, `name@alias`, `name@v3`); anything else is a 404."""
    name, at, suffix = ref.partition("@")
    if not _NAME.fullmatch(name):
        raise not_found(ref)
    if not at:
        return NameRef(name)
    if found := _VERSION.fullmatch(suffix):
        return NameRef(name, version=int(found.group(1)))
    if _ALIAS.fullmatch(suffix):
        return NameRef(name, alias=suffix)
    raise not_found(ref)


def is_version_like(alias: str) -> bool:
    return _VERSION.fullmatch(alias) is not None


def not_found(ref: object) -> NotFound:
    return NotFound(f"Model {str(ref)!r:.140} not found")
