"""The promise a test checks, told apart from everything the test needs on the way there.

A stage with nothing the invariant is about (stage 01 has no queue server to restart) marks its
test `does_not_apply(reason)`: it is not run, even where skips are refused, and the matrix shows
the reason.

A stage that breaks an invariant on purpose marks its test
`xfail(strict=True, raises=InvariantBroken)`. Only the check of the promise itself, written inside
`with invariant():`, raises InvariantBroken. Every other assertion in the test (the comment was
saved, Twitter held the call, the worker was found) raises a plain AssertionError, and so does a
bench that did not settle: those fail the run, so a broken bench never passes for a lesson.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


# --8<-- [start:invariant]
class InvariantBroken(AssertionError):
    """The stage did not keep the promise this test checks."""


@contextmanager
def invariant(*also: type[BaseException]) -> Iterator[None]:
    """Inside: a failed assert, or one of the exceptions in `also`, is the promise broken."""
    try:
        yield
    except InvariantBroken:
        raise
    except (AssertionError, *also) as error:
        raise InvariantBroken(str(error) or error.__class__.__name__) from error
# --8<-- [end:invariant]


# --8<-- [start:does_not_apply]
DOES_NOT_APPLY = "does not apply"


def does_not_apply(reason: str) -> pytest.MarkDecorator:
    """The stage has nothing this invariant is about: the test is not run, and says why."""
    return pytest.mark.skip(reason=f"{DOES_NOT_APPLY}: {reason}")
# --8<-- [end:does_not_apply]
