"""Which Wikipedia an agent searches: an offline corpus, or the live site through a cache.

Both give the agent fresh environments with the same interface (``reset``/``step``)
and say, for the result rows and the provenance, what exactly was searched:
the corpus' content hash, or the hash of the cached pages the run was served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from react import paths
from react.agent.protocol import DEFAULT_PROTOCOL
from react.environment.offline import WikiEnv
from react.search.index import Corpus
from react.search.sources.base import CorpusSource
from react.search.sources.registry import corpus_source


class Wiki(Protocol):
    kind: str  # offline | live

    def new_env(self, protocol: str = ...) -> Any: ...

    @property
    def sha256(self) -> str: ...

    def provenance(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass
class OfflineWiki:
    corpus: Corpus
    kind: str = "offline"

    def new_env(self, protocol: str = DEFAULT_PROTOCOL) -> WikiEnv:
        return WikiEnv(self.corpus, protocol)

    @property
    def sha256(self) -> str:
        return self.corpus.sha256

    def provenance(self) -> dict[str, Any]:
        return {"wiki": "offline", "corpus_titles": len(self.corpus)}

    def close(self) -> None:
        pass


class LiveWiki:
    """Wikipedia over HTTP (react.environment.live); the run's sha256 covers every page it was served."""

    kind = "live"

    def __init__(self, client: Any):
        self.client = client

    def new_env(self, protocol: str = DEFAULT_PROTOCOL) -> Any:
        from react.environment.live import LiveWikiEnv

        return LiveWikiEnv(self.client, protocol)

    @property
    def sha256(self) -> str:
        return self.client.served_sha256()

    def provenance(self) -> dict[str, Any]:
        return {"wiki": "live", "live": self.client.describe(), "requests": self.client.stats.as_dict(),
                "pages": self.client.manifest()}

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class LiveSettings:
    """A `live` corpus entry: Wikipedia over HTTP, every answer cached on disk."""

    url: str
    cache: str  # the folder of the cached answers
    offline: bool  # serve from the cache only
    user_agent: str | None  # None: the client's own
    timeout_s: float
    max_retries: int

    @classmethod
    def from_config(cls, corpus_name: str, live: dict[str, Any]) -> LiveSettings:
        """The validated `live` entry of corpus ``corpus_name`` (whose cache is the default one)."""
        return cls(url=live["url"], cache=live["cache"] or paths.WIKI_CACHE.format(corpus=corpus_name),
                   offline=live["offline"], user_agent=live["user_agent"], timeout_s=live["timeout_s"],
                   max_retries=live["max_retries"])


WikiSettings = CorpusSource | LiveSettings


def wiki_settings(corpus_name: str, spec: dict[str, Any]) -> WikiSettings:
    """The typed settings of a validated `corpus` entry: its offline source, or the live site."""
    return LiveSettings.from_config(corpus_name, spec["live"]) if "live" in spec else corpus_source(spec)


def open_wiki(corpus_name: str, settings: WikiSettings, corpus_path: str | Path | None = None,
              index_path: str | Path | None = None) -> Wiki:
    """The Wikipedia a `corpus` entry describes; offline, from its built corpus file and index."""
    if not isinstance(settings, LiveSettings):
        if corpus_path is None or index_path is None:
            raise ValueError(f"corpus {corpus_name!r} is offline: its Parquet file and index are needed")
        return OfflineWiki(Corpus.load(corpus_path, index_path))
    from react.environment.wikipedia import DEFAULT_USER_AGENT, WikipediaClient

    client = WikipediaClient(
        settings.cache,
        base_url=settings.url,
        user_agent=settings.user_agent or DEFAULT_USER_AGENT,
        offline=settings.offline,
        read_timeout=settings.timeout_s,
        connect_timeout=min(10.0, settings.timeout_s),
        response_deadline=max(60.0, 2 * settings.timeout_s),
        max_retries=settings.max_retries,
    )
    return LiveWiki(client)
