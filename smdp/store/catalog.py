"""Profile types (templates, metadata defaults, policy) and their repository functions."""
