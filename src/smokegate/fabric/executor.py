"""An Executor that gives fleet tasks the whole ``-H`` list in one call.

Fabric runs a task once per host. A rolling deploy is one run across all hosts, and a
fleet smoke wants every host at once, so tasks marked with :func:`fleet_task` are called
once with a :class:`FleetContext`. Select it in a ``fabric.yaml`` beside the fabfile::

    tasks:
      executor_class: smokegate.fabric.executor.FleetExecutor

(The collection's ``configure()`` cannot set it: ``fab`` reads ``tasks.executor_class``
before collection configuration is merged.)
"""

from __future__ import annotations

from typing import Any, Callable

from fabric import Executor
from fabric.tasks import ConnectionCall
from fabric.tasks import task as fabric_task
from invoke import Call, Context


class FleetContext(Context):
    """An Invoke Context that also carries the hosts' Connection arguments."""

    def __init__(self, config: Any, hosts: list[dict[str, Any]]) -> None:
        super().__init__(config=config)
        self._set(smokegate_hosts=hosts)


class FleetCall(Call):
    def __init__(
        self, *args: Any, hosts: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.hosts = list(hosts or [])

    def clone_data(self) -> dict[str, Any]:
        return dict(super().clone_data(), hosts=list(self.hosts))

    def make_context(self, config: Any) -> FleetContext:
        return FleetContext(config, [dict(host) for host in self.hosts])


def fleet_task(*args: Any, **kwargs: Any) -> Any:
    """``fabric.task``, marked to be called once for all hosts by FleetExecutor."""

    def mark(task: Any) -> Any:
        task.smokegate_fleet = True
        return task

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return mark(fabric_task(args[0]))
    decorate: Callable[..., Any] = fabric_task(*args, **kwargs)
    return lambda body: mark(decorate(body))


class FleetExecutor(Executor):
    """Fabric's executor, with the per-host calls of a fleet task folded into one call."""

    def expand_calls(self, calls: list[Any], apply_hosts: bool = True) -> list[Any]:
        folded: list[Any] = []
        for call in super().expand_calls(calls, apply_hosts=apply_hosts):
            if not getattr(call.task, "smokegate_fleet", False):
                folded.append(call)
                continue
            host = [call.init_kwargs] if isinstance(call, ConnectionCall) else []
            previous = folded[-1] if folded else None
            # Consecutive per-host calls of one invocation become one; a repeated host
            # means the task was named twice on the command line.
            if (
                isinstance(previous, FleetCall)
                and previous.task is call.task
                and previous.kwargs == call.kwargs
                and host
                and host[0] not in previous.hosts
            ):
                previous.hosts.extend(host)
            else:
                folded.append(
                    FleetCall(
                        task=call.task,
                        called_as=call.called_as,
                        args=call.args,
                        kwargs=call.kwargs,
                        hosts=host,
                    )
                )
        return folded
