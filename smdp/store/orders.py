"""Operators, orders and the callback outbox (ES2+) and their repository functions."""
