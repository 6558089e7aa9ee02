"""Interactive exploration: a Mesa ``SolaraViz`` page for designing a tax schedule.

``ExploreModel`` (no Solara needed) is the page's model; ``explore_page`` (needs the
``explore`` extra: solara, altair) returns the page for a Jupyter cell; ``econsim explore
SCENARIO`` serves it in the browser.  See ``docs/explore.md``.
"""

from __future__ import annotations

from typing import Any

from simulator.explore.model import DEFAULT_SCENARIO, ExploreModel, default_settings

__all__ = ["DEFAULT_SCENARIO", "ExploreModel", "default_settings", "explore_page"]


def explore_page(scenario: str = DEFAULT_SCENARIO, **params: Any):
    """The SolaraViz page for ``scenario`` (see :func:`simulator.explore.page.explore_page`)."""
    from simulator.explore.page import (
        explore_page as _page,  # deferred: Solara loads only for the page
    )

    return _page(scenario, **params)
