"""The deployment files agree with each other and with the settings.

No Docker engine runs here, so these tests read docker-compose.yml, the Dockerfile and the Procfile
and check what would break a deployment: a missing service, a process running the wrong program, a
second beat, an app container starting before its database, an environment variable the settings
never read (a typo that silently leaves a secure default or a development value in place), root.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")
# ${VAR}, ${VAR:-default}, ${VAR:?message}; "$$" is compose's escape for a literal "$".
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
# Compose variables that configure another service, not the application.
NOT_APP_SETTINGS = {"POSTGRES_PASSWORD": "postgres", "DATABASE_RUNTIME_PASSWORD": "migrate"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_source() -> str:
    return (ROOT / "trial" / "settings.py").read_text()


def dockerfile_final_stage() -> list[str]:
    """Instructions of the last build stage, continuation lines joined, comments dropped."""
    instructions, pending = [], []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            instructions.append(" ".join(pending))
            pending = []
    last_from = max(n for n, i in enumerate(instructions) if i.upper().startswith("FROM "))
    return instructions[last_from:]


def dockerfile_cmd() -> list[str]:
    cmd = [i for i in dockerfile_final_stage() if i.upper().startswith("CMD ")][-1]
    return json.loads(cmd[4:])


def command_of(name: str) -> list[str]:
    """The command a compose service runs: its own, or the image's CMD when it builds ours."""
    service = compose()["services"][name]
    command = service.get("command")
    if command is None:
        assert service.get("build"), f"{name} neither sets a command nor builds the Dockerfile"
        return dockerfile_cmd()
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = shlex.split(command)
    return processes


def program(command: list[str]) -> list[str]:
    """The program and its first arguments, whichever virtualenv or PATH it comes from."""
    return [Path(command[0]).name, *command[1:]]


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


def runs(name: str) -> str:
    """A service's command as one line ('' for a service that runs someone else's image)."""
    service = compose()["services"][name]
    return " ".join(command_of(name)) if service.get("command") or service.get("build") else ""


def is_read_by_settings(variable: str) -> bool:
    return f'"{variable}"' in settings_source()


def test_compose_has_the_six_services():
    services = compose()["services"]

    for name in ("postgres", "redis", "web", "worker", "beat", "mailcatcher"):
        assert name in services, f"docker-compose.yml has no {name} service"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert "pg_isready" in " ".join(strings_in(services["postgres"]["healthcheck"]["test"]))


def test_web_runs_gunicorn_with_the_project_wsgi_on_port_8000():
    command = program(command_of("web"))

    assert command[:2] == ["gunicorn", "trial.wsgi"]
    assert "0.0.0.0:8000" in command
    assert any(str(port).endswith(":8000") for port in compose()["services"]["web"].get("ports", []))


def test_worker_runs_a_celery_worker_for_the_trial_app():
    assert program(command_of("worker"))[:4] == ["celery", "-A", "trial", "worker"]


def test_exactly_one_beat():
    beat = compose()["services"]["beat"]

    assert program(command_of("beat"))[:4] == ["celery", "-A", "trial", "beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1
    second_beats = [name for name in compose()["services"] if name != "beat" and "beat" in runs(name)]
    assert not second_beats, f"{second_beats} also run celery beat"


def test_migrations_are_applied_before_the_app_starts():
    services = compose()["services"]
    migrators = [name for name in services if "manage.py migrate" in runs(name)]
    assert migrators, "no service runs manage.py migrate"

    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        waits_for_migrations = any(
            depends_on.get(migrator, {}).get("condition") == "service_completed_successfully"
            for migrator in migrators
            if migrator != name
        )
        assert waits_for_migrations or "manage.py migrate" in runs(name), f"{name} may start unmigrated"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_a_healthy_postgres_and_redis(name):
    depends_on = compose()["services"][name]["depends_on"]

    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_app_services_share_one_environment_pointing_at_the_compose_services():
    services = compose()["services"]
    environments = [services[name]["environment"] for name in APP_SERVICES]

    assert environments[1:] == environments[:-1], "web, worker and beat must run with the same settings"
    environment = environments[0]
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?"), (
        "SECRET_KEY must come from outside, never a default"
    )
    assert "smtp://mailcatcher:1025" in environment["EMAIL_URL"]
    assert {"ALLOWED_HOSTS", "BEHIND_PROXY"} <= environment.keys()
    assert "1025" in [str(port) for port in services["mailcatcher"].get("expose", [])]


def test_every_app_environment_variable_is_a_setting():
    environment = compose()["services"]["web"]["environment"]

    unread = [name for name in environment if not is_read_by_settings(name)]

    assert not unread, f"trial/settings.py never reads {unread}"


def test_every_compose_variable_is_a_setting_or_configures_another_service():
    data = compose()
    referenced = {name for text in strings_in(data) for name in COMPOSE_VARIABLE.findall(text)}
    assert "SECRET_KEY" in referenced

    unread = sorted(name for name in referenced - NOT_APP_SETTINGS.keys() if not is_read_by_settings(name))

    assert not unread, f"docker-compose.yml passes {unread}, which trial/settings.py never reads"
    for name, service in NOT_APP_SETTINGS.items():
        assert name in data["services"][service]["environment"]


def test_image_runs_gunicorn_as_a_non_root_user():
    stage = dockerfile_final_stage()
    users = [i.split(None, 1)[1].strip() for i in stage if i.upper().startswith("USER ")]

    assert stage[0].split()[1].startswith("python:3.11-slim")
    assert users, "the image runs as root: add a USER line"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert program(dockerfile_cmd())[:2] == ["gunicorn", "trial.wsgi"]


def test_image_collects_static_files_and_installs_assets_and_pdf_libraries():
    text = (ROOT / "Dockerfile").read_text()

    assert "collectstatic" in text
    assert "npm ci" in text
    assert "pip install -r requirements.txt" in text
    for library in ("libpango-1.0-0", "libharfbuzz", "libcairo2", "fonts-"):
        assert library in text, f"WeasyPrint needs {library} in the image"


def test_secrets_and_local_state_stay_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()

    for entry in (".env", ".venv", "node_modules", "var", ".git"):
        assert entry in ignored


def gunicorn_config(command: list[str]) -> str | None:
    """The configuration module a gunicorn command line loads (-c X, --config X, --config=X)."""
    for number, argument in enumerate(command):
        if argument in ("-c", "--config"):
            return command[number + 1]
        if argument.startswith("--config="):
            return argument.split("=", 1)[1]
    return None


def test_every_web_server_runs_the_production_gunicorn_configuration():
    """`make run` (the Procfile), the image (so compose) and the benchmark all start gunicorn with
    trial.gunicorn_conf (preloaded site, frozen out of the GC): the benchmark measures what runs."""
    from bench.server import gunicorn_command

    commands = {"Procfile": procfile()["web"], "image": command_of("web"), "bench": gunicorn_command(8000)}

    assert {where: gunicorn_config(command) for where, command in commands.items()} == dict.fromkeys(
        commands, "python:trial.gunicorn_conf"
    )
    assert {where: program(command)[:2] for where, command in commands.items()} == dict.fromkeys(
        commands, ["gunicorn", "trial.wsgi"]
    )


def test_procfile_runs_the_same_processes_as_compose():
    processes = procfile()

    assert set(processes) == set(APP_SERVICES)
    assert program(processes["web"])[:2] == program(command_of("web"))[:2] == ["gunicorn", "trial.wsgi"]
    for name in ("worker", "beat"):
        assert program(processes[name])[:4] == program(command_of(name))[:4]
