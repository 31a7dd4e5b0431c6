"""Checking for optional packages before a subcommand needs them."""

from __future__ import annotations

import importlib.util

from nextword.errors import MissingDependencyError


def require(module: str, *, extra: str, command: str) -> None:
    """Raise one actionable line if ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"`nextword {command}` needs {module}, which is not installed; "
            f"install it with: pip install \"nextword[{extra}]\""
        )
