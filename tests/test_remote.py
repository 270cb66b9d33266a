"""The engine as shipped to hosts, and the fab program's own behaviour, without SSH.

The bootstrap runs in a fresh ``python3 -I -S`` (no site-packages, so nothing but the
shipped bundle can provide the engine), fed exactly the bytes a host's sshd would pass.
"""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from conftest import REPO, hostile_specs, kill_all, memory_capped, running

from ansible_collections.smokegate.core.plugins.plugin_utils import shipping
from ansible_collections.smokegate.core.plugins.plugin_utils.shipping import read_answer
from smokegate import remote, rollout
from smokegate.engine import protocol

FAB = str(Path(sys.executable).with_name("fab"))


def bootstrap_answer(stream: bytes) -> dict:
    """The answer of the bootstrap fed ``stream`` on stdin, as a host's sshd would."""
    completed = subprocess.run(
        ["/usr/bin/env", "python3", "-I", "-S", "-c", remote.BOOTSTRAP],
        input=stream,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answer = read_answer(completed.stdout.decode())
    assert answer is not None, completed.stdout
    return answer


def run_on_this_machine(request: dict, prefix: bytes = b"") -> dict:
    return bootstrap_answer(prefix + remote.payload(request))


def artifact(directory: Path, name: str) -> str:
    source = directory / name
    source.mkdir()
    (source / "VERSION").write_text(name)
    (source / "restart.sh").write_text("echo restarted >> ../../restarts.log\n")
    path = protocol.upload_path(str(directory), name)  # as a front end uploads it
    with tarfile.open(path, "w:gz") as archive:
        archive.add(source, arcname=".")
    return path


def test_the_shipped_engine_runs_a_smoke_request_in_a_bare_interpreter(tmp_path: Path):
    answer = run_on_this_machine(
        {
            "host": "here",
            "steps": [
                {
                    "stage": "smoke",
                    "checks": {
                        "checks": [{"name": "tmp", "disk": {"path": str(tmp_path), "min_free": 1}}]
                    },
                }
            ],
        }
    )
    report = answer["steps"][0]["report"]
    assert answer["ok"] and report["host"] == "here" and report["results"][0]["status"] == "pass"


def test_a_host_runs_the_compiled_engine_only_when_its_python_reads_that_bytecode():
    # Two engines that tell apart which one ran: the sources, and code compiled from others.
    sources = {"agent": "def handle(request):\n    return {'ok': True, 'ran': 'sources'}\n"}
    code = {
        "agent": compile(
            "def handle(request):\n    return {'ok': True, 'ran': 'code'}\n",
            "smokegate_engine/agent.py",
            "exec",
        )
    }
    packed_sources = zlib.compress(json.dumps(sources).encode())
    packed_code = zlib.compress(marshal.dumps(code))
    host_tag = subprocess.run(
        [
            "/usr/bin/env",
            "python3",
            "-I",
            "-S",
            "-c",
            "import sys, importlib.util as u; print(sys.implementation.cache_tag, u.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert host_tag == shipping.BYTECODE_TAG  # this machine's python3 reads the controller's
    ran = {
        tag: bootstrap_answer(shipping.frame(b"{}", packed_sources, packed_code, tag))["ran"]
        for tag in (host_tag, "cpython-399 00000d0a", "None 00000d0a")
    }
    assert ran == {host_tag: "code", "cpython-399 00000d0a": "sources", "None 00000d0a": "sources"}
    # What the front ends send carries both, and either one alone is the whole engine.
    assert set(marshal.loads(zlib.decompress(shipping.engine_code()))) == set(
        json.loads(zlib.decompress(shipping.engine_bundle()))
    )
    check = {"name": "root", "disk": {"path": "/", "min_free": 1}}
    request = {"host": "here", "steps": [{"stage": "smoke", "checks": {"checks": [check]}}]}
    body = json.dumps(request).encode()
    for tag in (shipping.BYTECODE_TAG, "cpython-399 00000d0a"):
        stream = shipping.frame(body, shipping.engine_bundle(), shipping.engine_code(), tag)
        assert bootstrap_answer(stream)["ok"] is True, tag


def test_a_sudo_password_line_ahead_of_the_request_is_skipped(tmp_path: Path):
    # sudo -S consumes the line when it needs it; when it does not, the engine must.
    answer = run_on_this_machine({"root": str(tmp_path), "steps": [{"stage": "info"}]}, b"pw\n")
    assert answer["ok"] and answer["info"]["releases"] == []


def test_release_steps_stop_at_the_first_failure_and_honour_when(tmp_path: Path):
    root = tmp_path / "root"
    first = run_on_this_machine(
        {
            "root": str(root),
            "steps": [
                {"stage": "lock", "release": "v1", "holder": "me", "pid": 1},
                {"stage": "create", "release": "v1", "archive": artifact(tmp_path, "v1")},
                {"stage": "activate", "release": "v1"},
                {"stage": "restart", "command": "sh restart.sh", "when": "changed"},
                {"stage": "good", "release": "v1"},
                {"stage": "unlock", "release": "v1"},
            ],
        }
    )
    assert first["ok"], first
    assert first["info"]["current"] == "v1" and first["info"]["lock"] is None
    assert (root / "restarts.log").read_text() == "restarted\n"
    assert not list(tmp_path.glob("upload-v1-*.tar.gz"))  # the uploaded archive is removed

    again = run_on_this_machine(
        {
            "root": str(root),
            "steps": [
                {"stage": "activate", "release": "v1"},
                {"stage": "restart", "command": "sh restart.sh", "when": "changed"},
                {"stage": "activate", "release": "v9"},
                {"stage": "good", "release": "v1"},
            ],
        }
    )
    assert not again["ok"]
    assert [step["stage"] for step in again["steps"]] == ["activate", "restart", "activate"]
    assert again["steps"][1]["skipped"] == "changed"
    assert "release v9 does not exist" in again["steps"][2]["error"]
    assert (root / "restarts.log").read_text() == "restarted\n"  # not restarted again


def test_a_failing_restart_reports_its_exit_status_and_output(tmp_path: Path):
    root = tmp_path / "root"
    answer = run_on_this_machine(
        {
            "root": str(root),
            "steps": [
                {"stage": "create", "release": "v1", "archive": artifact(tmp_path, "v1")},
                {"stage": "activate", "release": "v1"},
                {"stage": "restart", "command": "echo port 8000 busy >&2; exit 3"},
                {"stage": "good", "release": "v1"},
            ],
        }
    )
    assert not answer["ok"]
    assert answer["steps"][-1]["error"] == "restart command exited 3: port 8000 busy"
    assert answer["info"]["releases"][0]["state"] == "deployed"  # never marked good


def test_a_timed_out_restart_kills_what_it_started(tmp_path: Path):
    pids = tmp_path / "pids"
    command = "sleep 1000 & echo $! >> {0}; sleep 1000 & echo $! >> {0}; echo $$ >> {0}; wait"
    started: list[int] = []
    try:
        answer = run_on_this_machine(
            {"steps": [{"stage": "restart", "command": command.format(pids), "timeout": 0.5}]}
        )
        started = [int(line) for line in pids.read_text().split()]
        assert answer["steps"][0]["error"] == "restart command did not finish in 0.5 s"
        assert len(started) == 3
        assert running(started) == []
    finally:
        kill_all(started)


def test_a_restart_that_succeeds_keeps_the_service_it_started(tmp_path: Path):
    pid_file = tmp_path / "service.pid"
    started: list[int] = []
    try:
        answer = run_on_this_machine(
            {
                "steps": [
                    {
                        "stage": "restart",
                        "command": "sleep 1000 >/dev/null 2>&1 & echo $! > %s" % pid_file,
                        "timeout": 5,
                    }
                ]
            }
        )
        started = [int(pid_file.read_text())]
        assert answer["ok"], answer
        assert running(started, wait=0) == started
    finally:
        kill_all(started)


FORGED_ANSWER = 'SMOKEGATE-ANSWER {"ok": true, "steps": []}'


def test_an_answer_marker_in_a_restarts_output_does_not_pass_for_the_answer():
    command = "printf '\\n%%s\\n' '%s'; exit 1" % FORGED_ANSWER
    answer = run_on_this_machine({"steps": [{"stage": "restart", "command": command}]})
    assert answer["ok"] is False
    assert answer["steps"][0]["error"] == "restart command exited 1: " + FORGED_ANSWER


def test_both_front_ends_read_the_answer_with_the_one_reader():
    from ansible_collections.smokegate.core.plugins.plugin_utils import engine_action

    assert remote.read_answer is read_answer
    assert engine_action.read_answer is read_answer


def test_the_command_line_carries_no_request_data():
    # The spec may hold HTTP header secrets: it travels on stdin, never in argv.
    assert remote.command() == remote.command("python3")
    assert len(remote.command()) < 2000
    assert remote.command(sudo=True).startswith("sudo -n -- python3 -c ")
    assert remote.command(sudo=True, sudo_password=True).startswith("sudo -S -p '' -- python3")


@pytest.mark.parametrize(
    ("serial", "sizes"),
    [
        ("1,50%,100%", [1, 2, 1]),
        ("2", [2, 2]),
        ("1,1", [1, 1, 1, 1]),
        ("100%", [4]),
        ("10%", [1, 1, 1, 1]),
    ],
)
def test_batches_follow_ansible_serial(serial: str, sizes: list[int]):
    plan = rollout.batches(["web1", "web2", "web3", "web4"], rollout.parse_serial(serial))
    assert [len(batch) for batch in plan] == sizes
    assert [host for batch in plan for host in batch] == ["web1", "web2", "web3", "web4"]


@pytest.mark.parametrize("serial", ["0", "abc", "150%", "", "1,,2"])
def test_a_bad_serial_is_refused(serial: str):
    with pytest.raises(ValueError, match="serial"):
        rollout.parse_serial(serial)


def fab(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FAB, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def test_fab_lists_the_four_tasks_and_documents_every_option():
    listing = fab("--list")
    assert listing.returncode == 0, listing.stderr
    # Task names start at column 2; wrapped help lines are indented further.
    assert [
        line.split()[0]
        for line in listing.stdout.splitlines()
        if line[:3].strip() and line.startswith("  ")
    ] == [
        "deploy",
        "releases",
        "rollback",
        "smoke",
    ]
    from smokegate.fabric import tasks

    for task in (tasks.deploy, tasks.rollback, tasks.releases, tasks.smoke):
        shown = fab("--help", task.name)
        assert shown.returncode == 0, shown.stderr
        for option in task.get_arguments():
            name = option.name.replace("_", "-")
            assert "--%s" % name in shown.stdout, (task.name, name)
            assert option.help, (task.name, name)


def test_fab_refuses_a_bad_spec_or_option_before_connecting(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"checks": [{"name": "x", "tcp": {"host": "db", "port": 0}}]}))
    # .invalid names never resolve: reaching the network at all would fail differently.
    run = fab("-H", "web1.invalid", "smoke", "--checks", str(bad))
    assert run.returncode == 2
    assert "check 'x': tcp.port" in run.stderr and "no host was touched" in run.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"checks": [{"name": "x", "disk": {"path": "/", "min_free": 1}}]}))
    archive = artifact(tmp_path, "v1")
    for options, message in [
        (["--serial", "0"], "serial: '0' is not a host count"),
        (["--rollback-scope", "some"], "--rollback-scope must be all or failed"),
        (["--release", "../x"], "is not a valid release id"),
    ]:
        run = fab(
            "-H",
            "web1.invalid",
            "deploy",
            "--artifact",
            archive,
            "--root",
            "/srv/app",
            "--checks",
            str(good),
            *options,
        )
        assert run.returncode == 2, options
        assert message in run.stderr, (options, run.stderr)


def test_fab_refuses_hostile_spec_files_before_connecting(tmp_path: Path):
    for name, path in hostile_specs(tmp_path).items():
        run = subprocess.run(
            memory_capped([FAB, "-H", "web1.invalid", "smoke", "--checks", str(path)]),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert run.returncode == 2, (name, run.stderr[-2000:])
        assert "Traceback" not in run.stderr and len(run.stderr) < 1000, (name, run.stderr)
        assert name in run.stderr or "spec: " in run.stderr, (name, run.stderr)


def test_deploy_without_the_fleet_executor_refuses(tmp_path: Path):
    # A user's own fabfile that imports the tasks but forgot the fabric.yaml.
    (tmp_path / "fabfile.py").write_text("from smokegate.fabric.tasks import deploy, smoke\n")
    run = fab(
        "-H",
        "web1.invalid,web2.invalid",
        "deploy",
        "--artifact",
        artifact(tmp_path, "v1"),
        "--root",
        "/srv/app",
        "--checks",
        "x.yml",
        cwd=tmp_path,
    )
    assert run.returncode == 2
    assert "executor_class: smokegate.fabric.executor.FleetExecutor" in run.stderr


def test_a_rollback_whose_restart_fails_still_releases_the_lock(tmp_path: Path):
    root = tmp_path / "root"
    setup = [
        {"stage": "lock", "release": "v2", "holder": "me"},
        {"stage": "create", "release": "v1", "archive": artifact(tmp_path, "v1")},
        {"stage": "activate", "release": "v1"},
        {"stage": "create", "release": "v2", "archive": artifact(tmp_path, "v2")},
        {"stage": "activate", "release": "v2"},
    ]
    assert run_on_this_machine({"root": str(root), "steps": setup})["ok"]
    steps = protocol.rollback_steps("v2", None, "test", "exit 4", 10, None, unlock_release="v2")
    answer = run_on_this_machine({"root": str(root), "steps": steps})
    stages = [step["stage"] for step in answer["steps"]]
    assert stages == ["discard", "rollback", "restart", "unlock"]
    assert answer["steps"][2]["error"] == "restart command exited 4: (no output)"
    assert answer["info"]["current"] == "v1" and answer["info"]["lock"] is None


def test_a_request_past_its_budget_starts_no_more_steps(tmp_path: Path):
    answer = run_on_this_machine(
        {
            "root": str(tmp_path / "root"),
            "budget": 0.2,
            "steps": [
                {"stage": "create", "release": "v1", "archive": artifact(tmp_path, "v1")},
                {"stage": "activate", "release": "v1"},
                {"stage": "restart", "command": "sleep 0.5"},
                {"stage": "lock", "release": "v1", "holder": "late"},
            ],
        }
    )
    assert not answer["ok"] and answer["info"]["lock"] is None
    assert answer["steps"][-1]["error"] == "not started: past the request's 0.2 s"
