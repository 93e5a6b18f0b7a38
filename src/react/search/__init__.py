"""Offline search: the corpus (Wikipedia paragraphs or abstracts), its sources, the BM25 index and title keys."""
