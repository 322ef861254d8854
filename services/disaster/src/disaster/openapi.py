"""Statuses a disaster route answers beyond the kernel's defaults, for its ``responses=``."""

from __future__ import annotations

from typing import Any

try:  # the kernel's builder, when it has one
    from pilar_kernel.problems import problem_responses
except ImportError:  # pragma: no cover - until the kernel ships it

    def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
        """``responses=`` entries: each status answered with an ``application/problem+json`` body."""
        titles = {400: "Bad request", 404: "Not found", 409: "Conflict", 422: "Invalid input", 503: "Unavailable"}
        return {
            code: {"description": titles.get(code, "Problem"),
                   "content": {"application/problem+json": {"schema": {"type": "object"}}}}
            for code in codes
        }
