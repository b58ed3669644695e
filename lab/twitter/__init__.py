"""The fake Twitter API (see server.py), its state and ledger, and a client to drive it."""

from .client import FakeTwitter
from .state import MAX_TWEET_LENGTH, MODES
from .users import DEMO_USERS

__all__ = ["FakeTwitter", "MODES", "MAX_TWEET_LENGTH", "DEMO_USERS"]
