"""Search calls (and the filter choices) behind the pages, cached with ``st.cache_data``: a rerun is instant.

Hits come back as the role may see them (``search.privacy.for_role``): a page never holds what it must not show.

The engine is passed unhashed (leading underscore); ``engine_key`` stands for it in the cache key, so results
of a reloaded engine (new index or checkpoint) are not served from the old one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from catalog import studies
from catalog.db import session_scope
from catalog.studies import FilterOptions
from search import privacy
from search.filters import Filters

if TYPE_CHECKING:
    from search.engine import Engine
    from search.hits import Hit

TTL_S = 600


def engine_key(engine: Engine) -> str:
    """Checkpoint and active index builds: a new build (the engine picks it up by itself) is a new cache key."""
    builds = ",".join(f"{kind}{ix['build_id']}" for kind, ix in sorted(engine.status()["indexes"].items()))
    return f"{engine.meta.hash}:{builds}:{id(engine)}"


@st.cache_data(ttl=TTL_S, max_entries=256, show_spinner="Searching…")
def text_hits(_engine: Engine, engine_key: str, text: str, mode: str, k: int, filters: Filters,
              role: str) -> list[Hit]:
    hits = _engine.query(text, k=k, mode=mode, filters=None if filters.is_empty() else filters)
    return [privacy.for_role(h, role) for h in hits]


@st.cache_data(ttl=TTL_S, max_entries=256, show_spinner="Searching by example…")
def example_hits(_engine: Engine, engine_key: str, text: str, mode: str, k: int, filters: Filters,
                 like: tuple[int, ...], unlike: tuple[int, ...], role: str) -> list[Hit]:
    """Query by example (``search.examples``): the studies marked like / unlike, with the text when given."""
    from search.examples import Examples

    hits = _engine.query(text, k=k, mode=mode, filters=None if filters.is_empty() else filters,
                         examples=Examples(like=like, unlike=unlike))
    return [privacy.for_role(h, role) for h in hits]


@st.cache_data(ttl=TTL_S, max_entries=256, show_spinner="Finding similar studies…")
def similar_hits(_engine: Engine, engine_key: str, study_uid: str, k: int, filters: Filters,
                 exclude_same_patient: bool, role: str) -> list[Hit]:
    hits = _engine.similar(study_uid, k=k, exclude_same_patient=exclude_same_patient,
                           filters=None if filters.is_empty() else filters)
    return [privacy.for_role(h, role) for h in hits]


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner="Scoring every study…")
def all_scores(_engine: Engine, engine_key: str, text: str, mode: str, filters: Filters, role: str) -> list[Hit]:
    """Every allowed study scored against ``text``, best first (cohorts)."""
    hits = _engine.scores_for(text, mode=mode, filters=None if filters.is_empty() else filters)
    return [privacy.for_role(h, role) for h in hits]


@st.cache_data(ttl=60, show_spinner=False)
def filter_options(database_url: str, role: str) -> FilterOptions:
    """The choices of the filter widgets as the role may see them; refreshed every minute so new ingests show up."""
    with session_scope(database_url) as session:
        return privacy.filter_options_for_role(studies.filter_options(session), role)
