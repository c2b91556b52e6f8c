"""Fixtures of the deploy tests: every overlay of manifests/ rendered once per session."""

from __future__ import annotations

import pytest

from tests.deploy.rendering import MANIFESTS, OVERLAYS, Doc, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """{overlay name: its rendered documents}, e.g. rendered["dev"]."""
    assert OVERLAYS, f"no overlays found under {MANIFESTS / 'overlays'}"
    return {overlay: render(MANIFESTS / "overlays" / overlay) for overlay in OVERLAYS}
