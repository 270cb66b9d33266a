#!/usr/bin/python
# Copyright: smokegate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: smoke
short_description: Run environment smoke checks on a host, all in one process
version_added: 0.1.0
description:
  - Runs a smokegate check spec (mounts, disk space, environment variables, binary versions,
    DNS, TCP and HTTP reachability, commands, services, processes, ports, files and TLS
    certificates) on the managed host, every check in parallel and each bounded by its
    timeout, and returns one report.
  - Fails when a critical check does not pass, naming each failed check, unless O(fail_on=never).
  - The spec is validated on the controller before anything is sent; every error names the
    check and the field.
  - Environment variable values, HTTP header values and the credentials of a URL
    (C(user:password@)) never appear in the output.
author:
  - smokegate contributors (@smokegate)
attributes:
  check_mode:
    support: full
    details: Runs the read-only checks; the write test of O(checks[].mount.writable) is skipped.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action:
    support: full
    details: The action plugin reads O(checks_file) on the controller and templates it.
  async:
    support: none
  bypass_host_loop:
    support: none
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.flow
options:
  fail_on:
    description:
      - V(critical) fails the task when a critical check does not pass.
      - V(never) only reports; read RV(smoke.ok).
    type: str
    default: critical
    choices: [critical, never]
  checks_file:
    description:
      - Path on the controller to a YAML or JSON spec (a mapping with a C(checks) list, or the list).
      - Templated with the host's variables, so a check may use a template such as C({{ ansible_host }}).
      - Exactly one of O(checks) and O(checks_file) is required.
    type: str
  budget:
    description:
      - Seconds the run should take at most; a slower run warns, naming its slowest checks
        (RV(smoke.budget)), and never fails for that.
      - The action plugin takes it from the spec file's top-level C(budget) with O(checks_file).
    type: float
  host:
    description:
      - The host's name as the checks know it (C({host}) in O(checks[].prometheus.query)) and
        as RV(smoke.host) names it.
      - The action plugin sets it to the host's C(inventory_hostname) unless it is given;
        without a name the module uses the machine's host name.
    type: str
  validate_only:
    description:
      - Validate and template the spec on the controller, then stop without contacting the host.
      - Returns the names of the checks (RV(check_names)), never their fields, which may hold secrets.
    type: bool
    default: false
  checks:
    description:
      - The checks to run. Each has a unique O(checks[].name), exactly one type key
        (O(checks[].mount), O(checks[].disk), O(checks[].env), O(checks[].binary),
        O(checks[].dns), O(checks[].tcp), O(checks[].http), O(checks[].command),
        O(checks[].service), O(checks[].process), O(checks[].port), O(checks[].file) or
        O(checks[].tls)) and optional common keys.
      - Exactly one of O(checks) and O(checks_file) is required.
    type: list
    elements: dict
    suboptions:
# BEGIN generated check options (scripts/sync-module-docs)
      name:
        description:
        - Unique name of the check.
        type: str
        required: true
      severity:
        description:
        - A failing warning is reported but never fails the gate.
        type: str
        default: critical
        choices:
        - critical
        - warning
      timeout:
        description:
        - Seconds one attempt may take; always enforced.
        type: float
        default: 5.0
      retries:
        description:
        - Extra attempts after a failed one.
        type: int
        default: 0
      retry_delay:
        description:
        - Seconds between attempts.
        type: float
        default: 1.0
      mount:
        description:
        - A C(mount) check. A path is a mount point (read from the mount table, so bind mounts count).
        type: dict
        suboptions:
          path:
            description:
            - Mount point that must exist.
            type: str
            required: true
          fstype:
            description:
            - Allowed filesystem type or list of types.
            type: raw
          options:
            description:
            - Mount options that must all be present, e.g. [rw].
            type: list
            elements: str
          source:
            description:
            - Expected mount source (device, export or bind root).
            type: str
          writable:
            description:
            - Create and remove a temporary file under the mount point.
            type: bool
            default: false
      disk:
        description:
        - A C(disk) check. Free space and free inodes on the filesystem holding a path.
        - Needs at least one of O(checks[].disk.min_free), O(checks[].disk.min_free_percent), O(checks[].disk.min_free_inodes_percent).
        type: dict
        suboptions:
          path:
            description:
            - Any path on the filesystem to measure.
            type: str
            required: true
          min_free:
            description:
            - Free bytes available to unprivileged users (500M, 2GiB, 10GB).
            type: raw
          min_free_percent:
            description:
            - Free space as a percentage of the filesystem.
            type: float
          min_free_inodes_percent:
            description:
            - Free inodes as a percentage of all inodes.
            type: float
      env:
        description:
        - A C(env) check. An environment variable is set (and matches a pattern); its value is never shown.
        type: dict
        suboptions:
          name:
            description:
            - Variable name.
            type: str
            required: true
          file:
            description:
            - Read a KEY=VALUE env file instead of the process environment.
            type: str
          pattern:
            description:
            - Regular expression the value must match (re.search).
            type: str
          allow_empty:
            description:
            - Accept a variable that is set but empty.
            type: bool
            default: false
      binary:
        description:
        - A C(binary) check. A command exists and, with version, reports a version inside a specifier.
        type: dict
        suboptions:
          name:
            description:
            - Command on PATH, or an absolute path.
            type: str
            required: true
          version:
            description:
            - Version specifier such as '>=6.0,<9'.
            type: str
          args:
            description:
            - Arguments that make it print its version (stdout and stderr are read).
            type: list
            elements: str
            default:
            - --version
          regex:
            description:
            - 'Where the version is: its first group, else its match.'
            type: str
      dns:
        description:
        - A C(dns) check. A name resolves through the system resolver (and to the expected addresses).
        type: dict
        suboptions:
          name:
            description:
            - Name to resolve.
            type: str
            required: true
          addresses:
            description:
            - Addresses that must all be among the resolved ones.
            type: list
            elements: str
          family:
            description:
            - Address family to ask for.
            type: str
            default: any
            choices:
            - any
            - ipv4
            - ipv6
      tcp:
        description:
        - A C(tcp) check. A TCP port accepts connections.
        type: dict
        suboptions:
          host:
            description:
            - Host name or address.
            type: str
            required: true
          port:
            description:
            - Port number.
            type: int
            required: true
      http:
        description:
        - A C(http) check. An HTTP(S) request returns the expected status (and body).
        type: dict
        suboptions:
          url:
            description:
            - http:// or https:// URL; a user:password@ in it is sent as Basic authentication, percent-decoded,
              and never shown.
            type: str
            required: true
          status:
            description:
            - Expected status code or list of codes.
            type: raw
            default:
            - 200
          body:
            description:
            - Regular expression the response body must match.
            type: str
          method:
            description:
            - Request method.
            type: str
            default: GET
            choices:
            - GET
            - HEAD
            - POST
            - PUT
            - DELETE
            - OPTIONS
            - PATCH
          headers:
            description:
            - Request headers; values are secrets and never shown.
            type: dict
          follow_redirects:
            description:
            - Follow up to 5 redirects.
            type: bool
            default: false
          validate_certs:
            description:
            - Verify the server certificate for https.
            type: bool
            default: true
          json:
            description:
            - The body is JSON, and each path holds the expected value or passes its tests.
            type: dict
          max_latency:
            description:
            - Seconds from the request to the last byte of the body; slower fails, whatever the status.
            type: float
      prometheus:
        description:
        - A C(prometheus) check. Every sample of a PromQL instant query (or the scalar it returns) is within
          bounds, asked of Prometheus's HTTP API (/api/v1/query under url) within the check's timeout. NaN and
          infinite samples fail whatever the bounds; a query Prometheus refuses is an error that shows its message,
          as is one that returns a range vector or a string.
        - Needs at least one of O(checks[].prometheus.max), O(checks[].prometheus.min).
        type: dict
        suboptions:
          url:
            description:
            - The Prometheus server's base URL, path prefix included (http://prometheus:9090); a user:password@
              in it is sent as Basic authentication, percent-decoded, and never shown.
            type: str
            required: true
          query:
            description:
            - 'PromQL, evaluated now. {host} in it is replaced by the host''s name as the front end knows it:
              the inventory_hostname in Ansible, the -H name with fab, the machine''s host name for smokegate
              check and serve.'
            type: str
            required: true
          max:
            description:
            - Every sample must be at most this.
            type: float
          min:
            description:
            - Every sample must be at least this.
            type: float
          on_empty:
            description:
            - 'What a query that returns no sample is (pass: for a series that only exists while something is
              wrong).'
            type: str
            default: fail
            choices:
            - fail
            - pass
          headers:
            description:
            - Request headers; values are secrets and never shown.
            type: dict
      command:
        description:
        - A C(command) check. A command (a smoke script, pytest -m smoke, manage.py check --deploy) exits as
          expected, its output matching. Run without a shell, in its own process group, killed with the whole
          group at its timeout; not run in check mode, since a command may change things.
        type: dict
        suboptions:
          argv:
            description:
            - The program (on PATH, or a path) and its arguments, never run by a shell; they are shown in messages,
              so pass secrets in env.
            type: list
            elements: str
            required: true
          exit:
            description:
            - Expected exit status, or a list of them.
            type: raw
            default:
            - 0
          stdout:
            description:
            - Regular expression its standard output must match.
            type: str
          stderr:
            description:
            - Regular expression its standard error must match.
            type: str
          cwd:
            description:
            - Directory to run it in.
            type: str
          env:
            description:
            - Variables added to its environment; the values are secrets, never shown.
            type: dict
          quiet:
            description:
            - Leave its output out of failure messages (the exit status is still shown).
            type: bool
            default: false
      service:
        description:
        - A C(service) check. A systemd unit is active (or is not), enabled, has been up for a while and is
          not restarting in a loop. Read with systemctl show; on a host without systemd it is an error.
        type: dict
        suboptions:
          name:
            description:
            - The unit; .service is assumed without a suffix.
            type: str
            required: true
          active:
            description:
            - Whether it must be active, or must not be.
            type: bool
            default: true
          enabled:
            description:
            - Whether it must be enabled (started at boot), or must not be.
            type: bool
          min_uptime:
            description:
            - 'Seconds it must have been active: a unit in a restart loop that happens to be up fails.'
            type: float
          max_restarts:
            description:
            - Automatic restarts (systemd's NRestarts) it may have had at most.
            type: int
      process:
        description:
        - A C(process) check. Processes are running, found by their exact name or a regex over their command
          line, and counted. Read from /proc (psutil when present); zombies do not count.
        - Needs at least one of O(checks[].process.name), O(checks[].process.cmdline).
        type: dict
        suboptions:
          name:
            description:
            - Exact process name, as pgrep and ps -o comm show it (the kernel keeps 15 characters of it; a longer
              one is completed from the command line).
            type: str
          cmdline:
            description:
            - Regular expression over the command line (its arguments joined by spaces).
            type: str
          min:
            description:
            - At least this many must run.
            type: int
            default: 1
          max:
            description:
            - At most this many may run.
            type: int
          user:
            description:
            - Only processes of this user count (a name, or an id as digits).
            type: str
      port:
        description:
        - 'A C(port) check. Something listens on a local port: read from the kernel''s socket tables (/proc/net),
          so no connection is made.'
        type: dict
        suboptions:
          port:
            description:
            - Port number.
            type: int
            required: true
          protocol:
            description:
            - tcp (a listening socket) or udp (a bound, unconnected one).
            type: str
            default: tcp
            choices:
            - tcp
            - udp
          address:
            description:
            - 'Local address it must listen on; a listener on 0.0.0.0 or :: listens on every address. Default:
              any.'
            type: str
      file:
        description:
        - A C(file) check. A file, directory or link is there (or is not), with its type, permissions, owner,
          size, age, content and syntax. Nothing is written.
        type: dict
        suboptions:
          path:
            description:
            - What to look at.
            type: str
            required: true
          exists:
            description:
            - 'Whether something must be there; false: nothing, not even a dangling link.'
            type: bool
            default: true
          type:
            description:
            - 'What it must be: symlink looks at the link itself, the others follow links.'
            type: str
            choices:
            - file
            - directory
            - symlink
          mode:
            description:
            - The exact permission bits, such as '0640'.
            type: raw
          max_mode:
            description:
            - 'The most it may allow, such as ''0644'': no bit beyond these.'
            type: raw
          owner:
            description:
            - 'The owning user: a name, or an id as digits.'
            type: str
          group:
            description:
            - 'The owning group: a name, or an id as digits.'
            type: str
          contains:
            description:
            - Regular expression its content must match (the first 8 MiB).
            type: str
          min_size:
            description:
            - The least size it may have (1 catches an emptied file).
            type: raw
          max_age:
            description:
            - Seconds since it was last modified, at most.
            type: float
          format:
            description:
            - It must parse as this format, or the message gives the line and the reason; yaml needs PyYAML
              on the host, toml Python 3.11+.
            type: str
            choices:
            - json
            - yaml
            - toml
            - ini
            - env
      tls:
        description:
        - A C(tls) check. A TLS certificate, a server's or a PEM file's, is valid for long enough; a server's
          is also trusted and issued for its name. The message gives its subject, issuer and the days it has
          left.
        - Needs at least one of O(checks[].tls.host), O(checks[].tls.file).
        type: dict
        suboptions:
          host:
            description:
            - Server to connect to, with port.
            type: str
          port:
            description:
            - The server's port.
            type: int
          file:
            description:
            - A PEM certificate file to read instead of a server.
            type: str
          min_days:
            description:
            - Days it must still be valid.
            type: float
            default: 14
          server_name:
            description:
            - 'Name sent as SNI and verified (default: host); with file, a name it must cover.'
            type: str
          ca_file:
            description:
            - PEM bundle of the CAs to trust instead of the system's.
            type: str
          verify:
            description:
            - Verify the server's chain and name.
            type: bool
            default: true
# END generated check options
notes:
  - The whole spec runs in one module execution per host, never one task per check.
  - Timeouts are per attempt and always enforced; a call that cannot be interrupted (a
    resolver that never answers) is abandoned and reported as V(timeout).
seealso:
  - module: smokegate.core.release
"""

EXAMPLES = r"""
- name: Check the environment the app needs
  smokegate.core.smoke:
    checks:
      - name: root filesystem
        mount: {path: /, options: [rw]}
      - name: free space
        disk: {path: /srv/app, min_free: 100MiB, min_free_percent: 1}
      - name: database url
        env: {name: DATABASE_URL, file: /srv/app/shared/app.env, pattern: "^postgres://"}
      - name: python
        binary: {name: python3, version: ">=3.8"}
      - name: localhost resolves
        dns: {name: localhost}
      - name: app health
        http: {url: "http://127.0.0.1:8000/healthz", body: ok}
        retries: 2

- name: Validate a spec file on the controller, without contacting the hosts
  smokegate.core.smoke:
    checks_file: smoke.yml
    validate_only: true
  run_once: true

- name: Run the checks of a spec file (looked up like the src of ansible.builtin.copy)
  smokegate.core.smoke:
    checks_file: smoke.yml

- name: Report only, never fail
  smokegate.core.smoke:
    fail_on: never
    checks:
      - name: search path
        env: {name: PATH, pattern: /usr/bin}
      - name: ssh port
        tcp: {host: 127.0.0.1, port: 22}
        severity: warning
        timeout: 2
  register: smoke_result

- name: Show the checks that did not pass
  ansible.builtin.debug:
    msg: "{{ smoke_result.smoke.results | rejectattr('status', 'equalto', 'pass') | map(attribute='name') | list }}"
"""

RETURN = r"""
smoke:
  description: The smoke report of this host.
  returned: unless O(validate_only)
  type: dict
  contains:
    host:
      description: The inventory name of the host.
      type: str
      sample: web1
    ok:
      description: False when any critical check is not V(pass) or V(skipped).
      type: bool
      sample: false
    duration_ms:
      description: Wall time of the whole run in milliseconds.
      type: float
      sample: 41.2
    summary:
      description: Counts of checks by status, and of C(flaky) ones (passed only after a retry).
      type: dict
      sample: {"total": 7, "passed": 5, "failed": 1, "errors": 1, "timeouts": 0, "skipped": 0, "flaky": 0}
    results:
      description: One entry per check, in spec order; one that passed only after a retry also has C(flaky=true).
      type: list
      elements: dict
      sample:
        - name: free space
          type: disk
          severity: critical
          status: fail
          message: 1.2 GiB free on /srv, need 2 GiB
          duration_ms: 0.4
          attempts: 1
    budget:
      description:
        - With O(budget), the budget in seconds, whether the run took longer (a warning, never
          a failure) and its slowest checks.
      returned: with O(budget)
      type: dict
      sample: {"seconds": 2.0, "exceeded": true, "slowest": [{"name": "app health", "duration_ms": 2400.5}]}
failed_checks:
  description: Names of the critical checks that did not pass.
  returned: unless O(validate_only)
  type: list
  elements: str
  sample: ["free space"]
check_names:
  description: The names of the checks in the validated spec, in spec order.
  returned: with O(validate_only)
  type: list
  elements: str
  sample: ["free space", "app health"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smokegate.core.plugins.module_utils.argspec import (
    smoke_argument_spec,
    url_credentials,
)
from ansible_collections.smokegate.core.plugins.module_utils.report import gate_result
from ansible_collections.smokegate.core.plugins.module_utils.runner import run_checks
from ansible_collections.smokegate.core.plugins.module_utils.spec import (
    SpecError,
    parse_spec,
    spec_document,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=smoke_argument_spec(),
        required_one_of=[("checks", "checks_file")],
        mutually_exclusive=[("checks", "checks_file")],
        supports_check_mode=True,
    )
    # Masked in everything returned from here on, failures and the invocation included.
    module.no_log_values.update(url_credentials(module.params["checks"]))
    if module.params["checks"] is None:
        module.fail_json(
            msg="checks_file is read on the controller by the action plugin; pass checks to the module"
        )
    try:
        checks = parse_spec(spec_document(module.params["checks"], module.params["budget"]))
    except SpecError as exc:
        module.fail_json(msg="invalid smoke spec:\n" + "\n".join(exc.errors), errors=exc.errors)
    report = run_checks(checks, host=module.params["host"], check_mode=module.check_mode)
    result = gate_result(report, module.params["fail_on"])
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
