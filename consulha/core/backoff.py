"""Capped exponential backoff for retry loops."""


class Backoff:
    """Capped exponential backoff: 0.2 s, 0.4 s, ... up to `cap`."""

    def __init__(self, first: float = 0.2, cap: float = 5.0):
        self.first, self.cap, self.current = first, cap, 0.0

    def next(self) -> float:
        self.current = min(self.cap, self.current * 2 if self.current else self.first)
        return self.current

    def reset(self) -> None:
        self.current = 0.0
