"""The fake Twitter's own tests use the same fixtures as every stage's tests."""

from lab.testing.fixtures import running_twitter, twitter  # noqa: F401  (the fake Twitter, fresh for each test)
