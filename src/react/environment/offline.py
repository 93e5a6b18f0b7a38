"""ReAct's ``WikiEnv`` offline: Search finds a page in a corpus (react.search.index) instead of on Wikipedia.

The pages are (title, sentences) rows: HotPotQA's context paragraphs, or the 2017
abstracts and other corpora (react.search.sources). With the ``react`` protocol a
page's sentences are joined into its paragraph and split as the online ``WikiEnv``
splits a page, so a Search observes what ReAct shows of a page whose text is that
paragraph. What still differs from the live site (docs: "What is comparable"):

* Pages are one paragraph (the abstract), not whole articles: Lookup sees only it.
* Search matches titles exactly after ``normalize_title`` (NFKC, casefold,
  whitespace collapsed); Wikipedia also follows redirects, does its own fuzzy
  matching and has disambiguation pages (ReAct retries those as ``[entity]``).
* "Similar" titles are the top-5 BM25 hits (bm25s, English stopwords, Snowball
  stemmer, over title + paragraph text, ties broken by title) instead of
  Wikipedia's search ranking; a query with no indexed token lists none (``[]``).

Everything else (Lookup, Finish, the observations) is the shared ``step`` of
react.environment.base.
"""

from __future__ import annotations

from react.agent.protocol import miss_observation, page_sentences, paragraph_text
from react.environment.base import Found, Missed, ReActEnv
from react.search.index import Corpus


class WikiEnv(ReActEnv):
    """ReAct's WikiEnv over a :class:`Corpus`: a title is found by its normalised form, or BM25 lists similar ones."""

    def __init__(self, corpus: Corpus, protocol: str = "react"):
        self.corpus = corpus
        super().__init__(protocol)

    def find(self, entity: str) -> Found | Missed:
        raw = self.corpus.page(entity)
        if raw is None:
            similar = self.corpus.similar(entity)
            if self.protocol == "lenient":
                return Missed(f"Could not find [{entity}]. Similar: {similar}.")
            return Missed(miss_observation(entity, similar))
        if self.protocol == "lenient":  # HotPotQA's own segmentation
            return Found([s.strip() for s in raw if s and s.strip()])
        # ReAct's: the page text the online environment would split (one paragraph: the abstract).
        return Found(page_sentences(paragraph_text(raw)))
