"""Where an offline Wikipedia's pages come from: HotPotQA's splits, or a corpus file (one module per source).

``registry`` maps a ``corpus`` entry's ``source`` to its module and builds the entry's
typed settings; ``base`` holds what the sources share (rows, passages, the writer).
"""
