"""Configuration: the schema (single source of defaults and checks), validation, typed settings, the reference."""
