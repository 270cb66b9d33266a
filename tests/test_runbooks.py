"""Every command of every on-call runbook in docs/runbooks/ runs, for real, as written.

docs/runbooks/README.md states the conventions the runbooks follow: a command is a ```sh
block, the ```text block below it is an excerpt of what it prints (``...`` for anything,
``(no output)``, ``(exit N)``), and ``<!-- scenario: NAME -->`` names the state the hosts
start in (SCENARIOS below). Every ``*.md`` file there is found and run: a new runbook needs
no change here unless it needs a new scenario.

Where a block runs, by its commands:

    fab, ssh                   the lab's SSH hosts (tests/lab; root only, CI runs as root)
    ansible, ansible-playbook  three local-connection hosts (tests/fleet.py's Fleet)
    anything else              both: it is the operator's own shell (cat, ps)

Each kind runs in document order against hosts freshly put in the runbook's scenario, from a
deploy directory holding ``inventory``, ``smoke.yml``, ``build/app.tar.gz``, ``fabfile.py``
and ``fabric.yaml``. Commands run exactly as written except for these replacements:

    /srv/app    local hosts: <deploy dir>/hosts/{{inventory_hostname}}, each host's own root
                (Ansible fills in the host). Lab hosts have a real /srv/app.
    4242        the process id of a process that has exited (the deploy that died)
    /etc/smokegate  <deploy dir>/etc/smokegate
    fab ...     fab -S <lab>/ssh_config ...   (at the start of a line: the lab's host names)
    ssh ...     ssh -F <lab>/ssh_config ...

and each output is compared after the reverse: a local host's root reads /srv/app again and
the dead process id reads 4242.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO, smokegate_executable
from fleet import Fleet, LabFleet
from formats import parse_nagios, parse_prometheus

from ansible_collections.smokegate.core.plugins.module_utils.releases import DeployRoot

RUNBOOK_DIR = REPO / "docs" / "runbooks"
INDEX = RUNBOOK_DIR / "README.md"
RUNBOOKS = sorted(path for path in RUNBOOK_DIR.glob("*.md") if path != INDEX)

ROOT = "/srv/app"
ETC = "/etc/smokegate"  # a host's smokegate configuration (poll-from-monitoring.md)
DEAD_PID = "4242"
HOSTS = ["web1", "web2", "web3"]
LAB_COMMANDS = ("fab", "ssh")
LOCAL_COMMANDS = ("ansible", "ansible-playbook")
SHELL_LANGUAGES = ("bash", "shell", "console", "zsh", "shell-session", "sh-session", "terminal")
EXIT_LINE = re.compile(r"^\(exit (\d+)\)$")
NO_OUTPUT = "(no output)"
BLOCK_TIMEOUT = 300


# --- reading runbooks --------------------------------------------------------------------
@dataclass
class Block:
    line: int  # the opening fence's, 1-based
    language: str
    text: str
    end: int  # the closing fence's
    name: str = ""  # after the language: the file a configuration block is (```ini x.service)


@dataclass
class Step:
    """A ```sh block and the outcome its ```text block shows."""

    path: Path
    line: int
    command: str
    excerpt: list[str]
    exit_status: int
    no_output: bool
    where: str  # "lab", "local" or "both"

    def __str__(self) -> str:
        return "%s:%d" % (self.path.relative_to(REPO), self.line)


@dataclass
class Runbook:
    path: Path
    scenario: str = "live"
    blocks: list[Block] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def steps_on(self, world: str) -> list[Step]:
        return [step for step in self.steps if step.where in (world, "both")]


FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


def fenced_blocks(text: str) -> tuple[list[Block], list[str]]:
    """Every fenced block, indented ones in lists too, and any fence left open."""
    blocks, problems = [], []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        start = index
        index += 1
        if not opening:
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(r"^ *%s{%d,} *$" % (re.escape(fence[0]), len(fence)))
        body = []
        while index < len(lines) and not closing.match(lines[index]):
            line = lines[index]  # a fence indented in a list item indents its body too
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            index += 1
        if index == len(lines):
            problems.append("line %d: this fenced block is never closed" % (start + 1))
        info = opening["info"].split()
        blocks.append(
            Block(
                start + 1,
                info[0] if info else "",
                "\n".join(body),
                index + 1,
                info[1] if len(info) > 1 else "",
            )
        )
        index += 1
    return blocks, problems


def commands_of(script: str) -> list[str]:
    """The program each command line of a shell block starts (heredoc bodies skipped)."""
    programs, heredoc_end = [], None
    for line in script.replace("\\\n", " ").splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        heredoc_end = heredoc.group(1) if heredoc else None
        words = line.split()
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value cmd
            words.pop(0)
        if words and not words[0].startswith("#"):
            programs.append(words[0])
    return programs


def where_it_runs(script: str) -> str:
    programs = commands_of(script)
    if any(program in LAB_COMMANDS for program in programs):
        return "lab"
    if any(program in LOCAL_COMMANDS for program in programs):
        return "local"
    return "both"


def read_runbook(path: Path) -> Runbook:
    """The runbook's steps; what breaks the conventions goes to ``problems``, never raised."""
    text = path.read_text()
    runbook = Runbook(path)
    scenario = re.findall(r"<!--\s*scenario:\s*(\S+)\s*-->", text)
    if len(scenario) > 1:
        runbook.problems.append("name one scenario, not %s" % ", ".join(scenario))
    runbook.scenario = scenario[0] if scenario else "live"
    if runbook.scenario not in SCENARIOS:
        runbook.problems.append(
            "scenario %r is not one of %s" % (runbook.scenario, ", ".join(SCENARIOS))
        )
    runbook.blocks, unclosed = fenced_blocks(text)
    runbook.problems.extend(unclosed)
    lines = text.splitlines()
    previous: Block | None = None
    for block in runbook.blocks:
        at = "line %d" % block.line
        if not block.language:
            runbook.problems.append("%s: give the block a language: sh or text" % at)
        elif block.language in SHELL_LANGUAGES:
            runbook.problems.append(
                "%s: commands go in ```sh blocks, not ```%s" % (at, block.language)
            )
        elif block.language == "text":
            if previous is None or previous.language != "sh":
                runbook.problems.append(
                    "%s: a ```text block shows the output of the ```sh block above it" % at
                )
            elif any(line.strip() for line in lines[previous.end : block.line - 1]):
                runbook.problems.append("%s: put the output right below its command" % at)
            else:
                step = step_of(path, previous, block, runbook.problems)
                if step is not None:
                    runbook.steps.append(step)
        if previous is not None and previous.language == "sh" and block.language != "text":
            runbook.problems.append(
                "line %d: a ```sh block needs a ```text block below it" % previous.line
            )
        previous = block
    if previous is not None and previous.language == "sh":
        runbook.problems.append(
            "line %d: a ```sh block needs a ```text block below it" % previous.line
        )
    if not runbook.steps:
        runbook.problems.append("no ```sh block: a runbook without commands is not one")
    return runbook


def step_of(path: Path, command: Block, output: Block, problems: list[str]) -> Step | None:
    excerpt = [line.strip() for line in output.text.splitlines() if line.strip()]
    exit_status = 0
    if excerpt and EXIT_LINE.match(excerpt[-1]):
        exit_status = int(EXIT_LINE.match(excerpt.pop())[1])
    no_output = excerpt == [NO_OUTPUT]
    if not excerpt:
        problems.append("line %d: show some output, or (no output)" % output.line)
        return None
    if not no_output and (NO_OUTPUT in excerpt or any(EXIT_LINE.match(line) for line in excerpt)):
        problems.append(
            "line %d: (no output) stands alone; (exit N) is the last line" % output.line
        )
        return None
    if all(line == "..." for line in excerpt):
        problems.append("line %d: show at least one line of the output" % output.line)
        return None
    where = where_it_runs(command.text)
    if where == "lab" and any(p in LOCAL_COMMANDS for p in commands_of(command.text)):
        problems.append(
            "line %d: split fab/ssh and ansible commands into two blocks" % command.line
        )
        return None
    return Step(
        path,
        command.line,
        command.text,
        [] if no_output else excerpt,
        exit_status,
        no_output,
        where,
    )


# --- the hosts a runbook starts from -----------------------------------------------------
@dataclass
class World:
    """The deploy directory and hosts one kind of block runs against."""

    kind: str  # "local" or "lab"
    dir: Path
    roots: dict[str, Path]  # each host's /srv/app, seen from here
    root_in_commands: str  # what /srv/app becomes in a command
    dead_pid: str
    ssh_config: Path | None = None
    app_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    payments_url: str = "https://payments.example/v1"

    @property
    def etc(self) -> Path:
        return self.dir / "etc" / "smokegate"

    def command(self, script: str) -> str:
        script = script.replace(ETC, str(self.etc)).replace(ROOT, self.root_in_commands)
        script = re.sub(r"\b%s\b" % DEAD_PID, self.dead_pid, script)
        if self.ssh_config is not None:
            script = re.sub(r"(?m)^(\s*)fab(?=\s)", r"\g<1>fab -S %s" % self.ssh_config, script)
            script = re.sub(r"(?m)^(\s*)ssh(?=\s)", r"\g<1>ssh -F %s" % self.ssh_config, script)
        return script

    def read_back(self, output: str) -> str:
        for root in sorted(map(str, self.roots.values()), key=len, reverse=True):
            output = output.replace(root, ROOT)
        output = output.replace(str(self.etc), ETC)
        return re.sub(r"\b%s\b" % self.dead_pid, DEAD_PID, output)

    def write_spec(self, text: str) -> None:
        (self.dir / "smoke.yml").write_text(text.replace(ROOT, self.root_in_commands))

    def app_env(self, host: str, payments: bool = True) -> None:
        shared = self.roots[host] / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        lines = ["APP_SECRET=%s" % self.app_secret]
        if payments:
            lines.append("PAYMENTS_URL=%s" % self.payments_url)
        (shared / "app.env").write_text("\n".join(lines) + "\n")

    @property
    def artifact(self) -> str:
        return str(self.dir / "build" / "app.tar.gz")


def dead_process_id() -> str:
    process = subprocess.Popen(["true"])
    process.wait()
    return str(process.pid)


def deploy_directory(fleet: Fleet) -> None:
    """What an operator's deploy directory holds: inventory, artifact, fabfile."""
    shutil.copy(fleet.inventory, fleet.dir / "inventory")
    (fleet.dir / "build").mkdir()
    shutil.move(fleet.artifact("app"), fleet.dir / "build" / "app.tar.gz")
    shutil.copy(REPO / "fabfile.py", fleet.dir)
    shutil.copy(REPO / "fabric.yaml", fleet.dir)


def local_world(directory: Path) -> World:
    fleet = Fleet(directory, count=len(HOSTS))
    deploy_directory(fleet)
    return World(
        "local",
        directory,
        {host: fleet.root(host) for host in HOSTS},
        "%s/hosts/{{inventory_hostname}}" % directory,
        dead_process_id(),
    )


def lab_world(fleet: LabFleet) -> World:
    deploy_directory(fleet)
    return World(
        "lab",
        fleet.dir,
        {host: fleet.root(host) for host in HOSTS},
        ROOT,
        dead_process_id(),
        ssh_config=fleet.lab_dir / "ssh_config",
    )


# The spec every scenario starts with; block style, so that a local root, which holds a
# template, stays a plain YAML scalar.
SPEC = """\
# The app's smoke spec: every deploy gates each batch on it.
checks:
  - name: deploy root space
    disk:
      path: /srv/app
      min_free: 50M
  - name: app secret
    env:
      name: APP_SECRET
      file: /srv/app/shared/app.env
      pattern: '^[0-9a-f]{24}$'
"""
PAYMENTS_CHECK = """\
  - name: payments url
    env:
      name: PAYMENTS_URL
      file: /srv/app/shared/app.env
      pattern: '^https://'
"""
RELEASES = ("20261119T090000Z", "20261120T090000Z", "20261121T120000Z")
DEAD_RELEASE = "20261122T080000Z"


def live(world: World) -> None:
    """Three good releases deployed in order, the last current; every host healthy."""
    world.write_spec(SPEC)
    for host, root in world.roots.items():
        deploy_root = DeployRoot(str(root))
        for release in RELEASES:
            deploy_root.create(release, archive=world.artifact)
            deploy_root.activate(release)
            deploy_root.mark_good(release)
        world.app_env(host)


def web3_lacks_payments_url(world: World) -> None:
    """``live``; the spec checks PAYMENTS_URL, which web3's app.env lacks."""
    live(world)
    world.write_spec(SPEC + PAYMENTS_CHECK)
    world.app_env("web3", payments=False)


def stuck_lock(world: World) -> None:
    """``live``; a deploy by deploy@ci1 died after switching web1, holding every lock."""
    live(world)
    web1 = DeployRoot(str(world.roots["web1"]))
    web1.create(DEAD_RELEASE, archive=world.artifact)
    web1.activate(DEAD_RELEASE)
    for host, root in world.roots.items():
        # What fab deploy writes on each host (releases.DeployRoot.lock), from ci1.
        holder = {
            "holder": "deploy@ci1:%s" % world.dead_pid,
            "pid": int(world.dead_pid),
            "host": host,
            "since": "2026-11-22T08:00:04Z",
            "release": DEAD_RELEASE,
        }
        (root / ".smokegate" / "lock").write_text(json.dumps(holder))


CAPISTRANO_RELEASES = ("20261119090000", "20261120090000", "20261121120000")


def capistrano(world: World) -> None:
    """Hosts as Capistrano or ansistrano left them: releases/, shared/, an absolute
    ``current`` to the newest release, and no ledger."""
    world.write_spec(SPEC)
    for host, root in world.roots.items():
        for release in CAPISTRANO_RELEASES:
            directory = root / "releases" / release
            directory.mkdir(parents=True)
            with tarfile.open(world.artifact) as archive:
                archive.extractall(directory, filter="data")
            (directory / "REVISION").write_text("%s\n" % release)
        world.app_env(host)
        # The path the host itself sees: /srv/app on a lab host, the root on a local one.
        seen = Path("/srv/app") if world.kind == "lab" else root
        (root / "current").symlink_to(seen / "releases" / CAPISTRANO_RELEASES[-1])


SCENARIOS: dict[str, Callable[[World], None]] = {
    "live": live,
    "web3-lacks-payments-url": web3_lacks_payments_url,
    "stuck-lock": stuck_lock,
    "capistrano": capistrano,
}


# --- running a runbook -------------------------------------------------------------------
def matches(line: str, output: str) -> bool:
    """``line`` (spacing aside, ``...`` for anything) appears within one line of ``output``."""
    parts = [part.strip() for part in " ".join(line.split()).split("...")]
    return re.search(".*?".join(map(re.escape, parts)), output) is not None


def run_steps(runbook: Runbook, world: World) -> None:
    assert not runbook.problems, "\n".join(runbook.problems)
    SCENARIOS[runbook.scenario](world)
    # The operator's shell, minus any Ansible settings of this machine that would change
    # what ansible-playbook prints.
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_")},
        **Fleet.ansible_env,
        "PATH": "%s%s%s" % (Path(sys.executable).parent, os.pathsep, os.environ.get("PATH", "")),
        "NO_COLOR": "1",
    }
    for step in runbook.steps_on(world.kind):
        script = world.command(step.command)
        completed = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=world.dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        output = world.read_back(completed.stdout)
        flat = re.sub(r"[ \t]+", " ", output)
        missing = [line for line in step.excerpt if line != "..." and not matches(line, flat)]
        wrong = []
        if completed.returncode != step.exit_status:
            wrong.append("exit status %d, not %d" % (completed.returncode, step.exit_status))
        if step.no_output and output.strip():
            wrong.append("it printed something; the runbook says (no output)")
        if missing:
            wrong.append("not in the output:\n  " + "\n  ".join(missing))
        leaked = [
            value for value in (world.app_secret, world.payments_url) if value in completed.stdout
        ]
        if leaked:
            wrong.append("an env value is in the output: %s" % ", ".join(leaked))
        assert not wrong, "%s (on %s hosts): %s\n$ %s\n%s" % (
            step,
            world.kind,
            "; ".join(wrong),
            script,
            output,
        )


RUNS = {path.stem: read_runbook(path) for path in RUNBOOKS}
# The runbooks each of the two running tests runs: every one with a block of that kind.
RUN_ON = {
    kind: [name for name, runbook in RUNS.items() if runbook.steps_on(kind)]
    for kind in ("local", "lab")
}


# --- tests -------------------------------------------------------------------------------
def test_there_are_runbooks_and_the_index_lists_each_one():
    assert RUNBOOKS
    index = INDEX.read_text()
    for path in RUNBOOKS:
        assert "(%s)" % path.name in index, "list %s in %s" % (path.name, INDEX)
    for target in re.findall(r"\]\(([^)#]+\.md)\)", index):
        assert (RUNBOOK_DIR / target).exists(), target
    for name in SCENARIOS:
        assert "`%s`" % name in index, "describe scenario %s in %s" % (name, INDEX)
    blocks, problems = fenced_blocks(index)
    assert not problems and not [block for block in blocks if block.language == "sh"]


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda path: path.stem)
def test_runbook_follows_the_conventions(path: Path):
    runbook = RUNS[path.stem]
    assert not runbook.problems, "%s:\n  %s" % (path, "\n  ".join(runbook.problems))
    sh_blocks = [block.line for block in runbook.blocks if block.language == "sh"]
    assert sh_blocks == [step.line for step in runbook.steps]
    # Every block is run by the local test, the lab test, or both.
    for step in runbook.steps:
        kinds = ("local", "lab") if step.where == "both" else (step.where,)
        assert all(path.stem in RUN_ON[kind] for kind in kinds), step


@pytest.mark.parametrize("name", RUN_ON["local"])
def test_runbook_on_local_hosts(name: str, tmp_path: Path):
    run_steps(RUNS[name], local_world(tmp_path))


@pytest.mark.lab
@pytest.mark.parametrize("name", RUN_ON["lab"])
def test_runbook_on_lab_hosts(name: str, lab_fleet: LabFleet):
    run_steps(RUNS[name], lab_world(lab_fleet))


def test_the_excerpt_matcher():
    output = "web1 : ok=7 changed=0 unreachable=0 failed=0\nweb2 : ok=7 changed=2"
    assert matches("web1   :  ok=... changed=0 unreachable=0 failed=0 ...", output)
    assert not matches("web2 : ok=... changed=0", output)
    assert not matches("web1 ... changed=2", output)  # never across lines


# --- configuration files a runbook shows ---------------------------------------------------
# A block such as ```ini smokegate-serve.service is a file to install, not a command: each
# one is checked by the verifier for its name below, and a file nobody verifies fails.
INSTALLED = "/opt/smokegate/bin/smokegate"


def config_blocks() -> dict[str, tuple[Path, str]]:
    return {
        block.name: (path, block.text)
        for path in RUNBOOKS
        for block in RUNS[path.stem].blocks
        if block.name
    }


CONFIGS = config_blocks()


@contextmanager
def unit_running(unit: str, etc: Path) -> Iterator[str]:
    """The unit's ExecStart, run as systemd would run it (credentials, environment)."""
    command = re.search(r"(?m)^ExecStart=(.*)$", unit)[1]
    credential = re.search(r"(?m)^LoadCredential=token:(.*)$", unit)[1]
    assert credential == ETC + "/token"
    credentials = etc.parent / "credentials"
    credentials.mkdir()
    shutil.copy(etc / "token", credentials / "token")
    argv = [
        word.replace("${CREDENTIALS_DIRECTORY}", str(credentials)).replace(ETC, str(etc))
        for word in shlex.split(command)
    ]
    assert argv[0] == INSTALLED
    argv[0] = smokegate_executable()
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        port = argv[argv.index("--port") + 1]
        url = "http://127.0.0.1:%s" % port
        for _attempt in range(100):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=5)
            except urllib.error.HTTPError:
                break  # it answers (401: no token)
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def scrape(url: str, token: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read().decode()


def monitored_host(tmp_path: Path) -> Path:
    etc = tmp_path / "etc" / "smokegate"
    etc.mkdir(parents=True)
    (etc / "smoke.yml").write_text(
        "checks:\n  - {name: root space, disk: {path: /, min_free: 1M}}\n"
        "  - {name: spare, tcp: {host: 127.0.0.1, port: 9}, severity: warning, timeout: 1}\n"
    )
    (etc / "token").write_text(secrets.token_hex(24))
    (etc / "token").chmod(0o600)
    return etc


def test_every_configuration_file_in_a_runbook_is_verified():
    assert set(CONFIGS) == {
        "smokegate-serve.service",
        "prometheus.yml",
        "smokegate.rules.yml",
        "nrpe.cfg",
        "nagios.cfg",
    }


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze here")
def test_the_systemd_unit_verifies_and_serves_what_prometheus_scrapes(tmp_path: Path):
    unit = CONFIGS["smokegate-serve.service"][1]
    # systemd's own checker, with the executable where this checkout installed it.
    unit_file = tmp_path / "smokegate-serve.service"
    unit_file.write_text(unit.replace(INSTALLED, smokegate_executable()))
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert "smokegate-serve.service" not in verified.stderr  # no warning about the unit

    etc = monitored_host(tmp_path)
    token = (etc / "token").read_text()
    job = yaml.safe_load(CONFIGS["prometheus.yml"][1])["scrape_configs"][0]
    rules = yaml.safe_load(CONFIGS["smokegate.rules.yml"][1])["groups"][0]["rules"]
    with unit_running(unit, etc) as url:
        assert "--host 0.0.0.0" in unit  # reachable by Prometheus, so the token is required
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + job["metrics_path"], timeout=30)
        assert refused.value.code == 401
        assert job["authorization"]["type"] == "Bearer"
        metrics = parse_prometheus(scrape(url + job["metrics_path"], token))
    assert all(target.endswith(":9810") for target in job["static_configs"][0]["targets"])
    assert "--port 9810" in unit
    # Every series an alert selects is in the scrape, with the labels it uses.
    checks = metrics["smokegate_check_ok"]
    for rule in rules:
        selected = re.findall(r'(smokegate_\w+)(?:\{(\w+)="([^"]*)"\})?', rule["expr"])
        for metric, label, value in selected:
            series = metrics[metric]
            assert series, rule["alert"]
            if label:
                assert any(labels[label] == value for labels, _value in series), rule["alert"]
    by_name = {labels["name"]: value for labels, value in checks}
    assert by_name == {"root space": 1, "spare": 0}


def test_the_nrpe_command_is_a_nagios_plugin(tmp_path: Path):
    line = CONFIGS["nrpe.cfg"][1].strip()
    name, command = re.fullmatch(r"command\[(\w+)\]=(.*)", line).groups()
    assert "check_command           %s" % name in CONFIGS["nagios.cfg"][1]
    assert "-c %s" % name in CONFIGS["nagios.cfg"][1]
    etc = monitored_host(tmp_path)
    argv = [word.replace(ETC, str(etc)) for word in shlex.split(command)]
    assert argv[0] == INSTALLED
    argv[0] = smokegate_executable()
    warning = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert warning.returncode == 1, warning.stdout + warning.stderr
    assert parse_nagios(warning.stdout).status == "WARNING"
    (etc / "smoke.yml").write_text("checks: [{name: broken}]\n")
    unknown = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert unknown.returncode == 3 and parse_nagios(unknown.stdout).status == "UNKNOWN"
