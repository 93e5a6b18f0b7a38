"""The environment: one ReAct environment (Search, Lookup, Finish); offline and live differ in how a title is found."""
