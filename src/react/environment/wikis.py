"""Which Wikipedia an agent searches: an offline corpus, or the live site through a cache.

Both give the agent fresh environments with the same interface (``reset``/``step``)
and say, for the result rows and the provenance, what exactly was searched:
the corpus' content hash, or the hash of the cached pages the run was served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from react.agent.protocol import DEFAULT_PROTOCOL
from react.search.index import Corpus, WikiEnv


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


def default_cache(corpus_name: str) -> str:
    return f"results/wiki-cache/{corpus_name}"


def open_wiki(corpus_name: str, spec: dict[str, Any], corpus_path: str | Path | None = None,
              index_path: str | Path | None = None) -> Wiki:
    """The Wikipedia a `corpus` entry of the configuration describes."""
    if "live" not in spec:
        if corpus_path is None or index_path is None:
            raise ValueError(f"corpus {corpus_name!r} is offline: its Parquet file and index are needed")
        return OfflineWiki(Corpus.load(corpus_path, index_path))
    from react.environment.live import DEFAULT_USER_AGENT, WikipediaClient

    live = spec["live"]
    client = WikipediaClient(
        live.get("cache") or default_cache(corpus_name),
        base_url=live.get("url", "https://en.wikipedia.org"),
        user_agent=live.get("user_agent") or DEFAULT_USER_AGENT,
        offline=live.get("offline", False),
        read_timeout=live.get("timeout_s", 30),
        connect_timeout=min(10.0, live.get("timeout_s", 30)),
        response_deadline=max(60.0, 2 * live.get("timeout_s", 30)),
        max_retries=live.get("max_retries", 5),
    )
    return LiveWiki(client)
