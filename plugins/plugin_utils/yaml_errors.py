# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A YAML error as a message that never quotes the document.

PyYAML without libyaml, and ansible-core before 2.19, quote the offending lines in their
errors; in a smoke spec those lines may hold a header value or a URL's password. Used by
``smokegate check`` and the smoke action plugin alike.

>>> import yaml
>>> try:
...     yaml.load("checks: [{url: 'http://ops:s3cret@db/'", Loader=yaml.SafeLoader)
... except yaml.YAMLError as exc:
...     print(yaml_problem(exc))
expected ',' or '}', but got '<stream end>' at line 1, column 39, while parsing a flow mapping from line 1, column 10
"""

from __future__ import annotations

from typing import Any, Optional


def _at(mark: Any) -> str:
    return "line %d, column %d" % (mark.line + 1, mark.column + 1)


def yaml_problem(exc: Optional[BaseException]) -> str:
    """What is wrong and where (a PyYAML MarkedYAMLError's problem and marks)."""
    problem = getattr(exc, "problem", None) or "it cannot be parsed"
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context", None)
    text = problem + (" at " + _at(mark) if mark is not None else "")
    if context:
        context_mark = getattr(exc, "context_mark", None)
        text += ", " + context + (" from " + _at(context_mark) if context_mark is not None else "")
    return text
