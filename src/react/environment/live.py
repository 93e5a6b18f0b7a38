"""ReAct's online environment: ``LiveWikiEnv``, which finds an entity on Wikipedia through a ``WikipediaClient``.

``LiveWikiEnv`` reproduces ysymyth/ReAct's ``wikienv.py`` (the paper's online
environment) with the public interface of the offline :class:`react.environment.offline.WikiEnv`;
the two differ only in how an entity is found (:meth:`LiveWikiEnv.find`). A search
fetches the original's URL (:class:`react.environment.wikipedia.WikipediaClient`) and
parses the HTML with BeautifulSoup's ``html.parser``:

* ``div.mw-search-result-heading`` elements → ``Could not find {entity}. Similar:
  {titles[:5]}.`` (titles through :func:`clean_str`); the current page stays.
* otherwise the texts of every ``p`` then every ``ul`` element: if one contains
  ``may refer to:`` the search is retried with ``[entity]``; else the page is the
  texts of more than two space-separated words, through :func:`clean_str`, one per
  line, and the observation is its first 5 sentences (:func:`page_sentences`: lines
  split at ``". "``, each stripped and given a ``"."``, so a sentence ending a
  paragraph ends in ``".."`` exactly as online).

Observations, action matching, ``Lookup`` and endings are the base's
(react.environment.base, react.agent.protocol); with ``react`` they are the original's.
Where this module deliberately differs from the original:

* The ``may refer to:`` retry: the original recursed with ``[[entity]]``,
  ``[[[entity]]]``, ... for as long as the answer was a disambiguation page. With
  the ``react`` protocol that is followed for up to :data:`MAX_DISAMBIGUATION`
  levels and then ends the question as the original's RecursionError would (a
  crash, counted wrong); with ``lenient`` a second disambiguation page is shown.
* ``clean_str`` (``unicode-escape`` then latin-1 round trip) raises on text with a
  malformed backslash escape (``C:\\Users``) or a character it cannot round-trip:
  with ``react`` that ends the question as a crash, as in the original's loop;
  with ``lenient`` the text is kept unchanged.
* What the client does differently (statuses, charset, the cache): see
  react.environment.wikipedia.
"""

from __future__ import annotations

from bs4 import BeautifulSoup

from react.agent.protocol import ActionCrash, miss_observation, page_sentences
from react.environment.base import Found, Missed, ReActEnv
from react.environment.wikipedia import (
    PARSER,
    ServedPage,
    WikipediaClient,
    clean_str,
    page_text,
    pages_sha256,
)

# The original recursed until Python's limit (1000 frames) on repeated disambiguation pages; each
# level is one request, so we stop far earlier and end the question as that crash would.
MAX_DISAMBIGUATION = 10
DISAMBIGUATION_MARK = "may refer to:"
RESULT_HEADING_CLASS = "mw-search-result-heading"


class LiveWikiEnv(ReActEnv):
    """ReAct's online WikiEnv: an entity is found through a :class:`WikipediaClient`.

    Never raises on a model-written string; a network failure that outlasts the
    client's retries raises :class:`react.environment.wikipedia.WikipediaError` (an
    observation cannot stand in for a page we failed to get).
    """

    def __init__(self, client: WikipediaClient, protocol: str = "react"):
        self.client = client
        super().__init__(protocol)

    def reset(self) -> None:
        super().reset()
        self.served: list[ServedPage] = []  # responses this episode observed, in order

    @property
    def sha256(self) -> str:
        """sha256 of the set of responses this episode observed (see :func:`pages_sha256`)."""
        return pages_sha256(self.served)

    def _fetch_soup(self, entity: str) -> BeautifulSoup:
        response = self.client.search(entity)
        self.served.append(self.client.served[-1])  # the record the client just made of this response
        return BeautifulSoup(response.html, features=PARSER)

    def find(self, entity: str, depth: int = 0) -> Found | Missed:
        strict = self.protocol == "react"
        soup = self._fetch_soup(entity)
        headings = soup.find_all("div", {"class": RESULT_HEADING_CLASS})
        if headings:  # no exact match: the current page stays
            return Missed(miss_observation(entity, [clean_str(div.get_text().strip(), strict) for div in headings]))
        texts = [el.get_text().strip() for el in soup.find_all("p") + soup.find_all("ul")]
        if any(DISAMBIGUATION_MARK in t for t in texts) and (depth == 0 or strict):
            if depth >= MAX_DISAMBIGUATION:
                raise ActionCrash(f"RecursionError: {depth} disambiguation pages in a row for {entity!r}")
            return self.find(f"[{entity}]", depth + 1)
        return Found(page_sentences(page_text(texts, strict)))
