"""The traffic simulator, for the project's tests; it lives in heddle.explain.traffic, where
`heddle explain` uses it too."""

from heddle.explain.traffic import (
    HCM,
    TCP_PROXY,
    Call,
    Direction,
    Error,
    Protocol,
    Result,
    Tls,
    header_matches,
    simulate,
    string_matches,
)

__all__ = ["HCM", "TCP_PROXY", "Call", "Direction", "Error", "Protocol", "Result", "Tls",
           "header_matches", "simulate", "string_matches"]
