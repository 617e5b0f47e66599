"""The deployment files read as an attacker would: docker-compose.yml, the Dockerfile,
deploy/postgres-init.sh and the Temporal UI's proxy configuration (deploy/caddy/Caddyfile).

Static checks (this machine has no Docker engine; nothing is started): the Temporal frontend
and the Temporal UI are published by nobody, the UI is reached only through a proxy that asks
for a password over HTTPS, uvicorn never believes X-Forwarded-For by itself, the API and the
worker connect to PostgreSQL as the app's role and only the migration job as the owner, and
PostgreSQL asks every connection for a password.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml  # PyYAML: installed with the test extra (schemathesis depends on it)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
POSTGRES_INIT = ROOT / "deploy" / "postgres-init.sh"

TEMPORAL_FRONTEND_PORT = 7233
TEMPORAL_UI_CONTAINER_PORT = 8080
APP_ROLE, OWNER_ROLE, APP_GROUP = "crowdlending", "crowdlending_owner", "crowdlending_app"
APP_DATABASE = "crowdlending"
BASIC_AUTH = ("basic_auth", "basicauth")  # (basicauth: its name before Caddy 2.8)

# A required variable in compose: `${NAME:?message}` (compose refuses to start without it).
REQUIRED_VARIABLE = re.compile(r"^\$\{(\w+):\?[^}]*\}$")
DATABASE_URL = re.compile(
    r"^postgres(?:ql)?(?:\+\w+)?://(?P<user>[^:@/]+):(?P<password>.*)@(?P<host>[^@:/]+)(?::(?P<port>\d+))?"
    r"/(?P<database>[^/?]+)$"
)


# --- docker-compose.yml -------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())  # resolves the `<<: *app-env` merges
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(name): "" if value is None else str(value) for name, value in env.items()}


def image(service: dict[str, Any]) -> str:
    return str(service.get("image") or "")


def built_from_this_repository(service: dict[str, Any]) -> bool:
    build = service.get("build")
    context = build.get("context", ".") if isinstance(build, dict) else build
    return context in (".", "./")


def argv(command: Any) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _port_range(text: str) -> range:
    low, _, high = text.partition("-")
    return range(int(low), int(high or low) + 1)


def published_ports(service: dict[str, Any]) -> list[tuple[range | None, range]]:
    """(host ports or None for "any free port", container ports) of each `ports` entry."""
    out: list[tuple[range | None, range]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):  # long syntax
            published = entry.get("published")
            out.append((_port_range(str(published)) if published else None, _port_range(str(entry["target"]))))
            continue
        text = str(entry).split("/", 1)[0]  # "8000:8000/tcp"
        parts = text.rsplit(":", 2)  # [ip:]host:container, host:container or container
        host = parts[-2] if len(parts) >= 2 else ""
        out.append((_port_range(host) if host else None, _port_range(parts[-1])))
    return out


def repository_file_mounted_at(service: dict[str, Any], target: str) -> Path | None:
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, mounted_at = volume.get("source", ""), volume.get("target", "")
        else:
            source, mounted_at = ([*str(volume).split(":"), ""])[:2]
        if mounted_at == target and source.startswith("."):
            return (ROOT / source).resolve()
    return None


def uvicorn_invocations(words: list[str]) -> Iterator[list[str]]:
    """Each uvicorn command line in an argv, `sh -c "..."` and `python -m uvicorn` included."""
    for index, word in enumerate(words):
        if PurePosixPath(word).name == "uvicorn":
            yield words[index:]
            return
        if " " in word and "uvicorn" in word:
            yield from uvicorn_invocations(shlex.split(word))
            return


def check_uvicorn(where: str, invocation: list[str]) -> None:
    assert "--no-proxy-headers" in invocation, f"{where}: uvicorn without --no-proxy-headers: {invocation}"
    assert "--proxy-headers" not in invocation, f"{where}: uvicorn with --proxy-headers: {invocation}"
    assert not any(word.startswith("--forwarded-allow-ips") for word in invocation), (
        f"{where}: --forwarded-allow-ips: the app decides whom to believe (TRUSTED_PROXIES)"
    )


# --- Caddyfile ----------------------------------------------------------------------------


def caddy_blocks(text: str) -> tuple[list[list[str]], dict[str, list[tuple[tuple[str, ...], list[str]]]]]:
    """(global options, {site address: [(enclosing blocks, tokens)]}) of a Caddyfile. A block
    opens on a line ending in `{` and closes on a line that is `}`; `{$NAME}` inside a line is
    the environment substitution, not a block."""
    global_options: list[list[str]] = []
    sites: dict[str, list[tuple[tuple[str, ...], list[str]]]] = {}
    stack: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s+#.*$", "", line)
        if line == "}":
            assert stack, "unbalanced } in the Caddyfile"
            stack.pop()
            continue
        opens = line.endswith("{")
        tokens = shlex.split(line[:-1] if opens else line)
        header = " ".join(tokens)
        if not stack:
            assert opens, f"a directive outside any site block: {line!r}"
            if tokens:
                sites[header] = []
        elif stack[0] == "":
            global_options.append(tokens)
        else:
            sites[stack[0]].append((tuple(stack), tokens))
        if opens:
            stack.append(header)
    assert not stack, "unclosed block in the Caddyfile"
    return global_options, sites


def check_authenticating_proxy(name: str, service: dict[str, Any]) -> set[str]:
    """Asserts that `service` is Caddy serving only HTTPS sites, each wholly behind basic_auth
    whose password hashes come from required compose variables. Returns its upstreams."""
    assert image(service).startswith("caddy:"), (
        f"service {name} publishes ports but is neither the API nor Caddy with basic_auth "
        f"({image(service) or 'a build'}); if it is another authenticating proxy, teach this test to read it"
    )
    words = argv(service.get("command"))
    config = words[words.index("--config") + 1] if "--config" in words else "/etc/caddy/Caddyfile"
    path = repository_file_mounted_at(service, config)
    assert path is not None and path.is_file(), f"service {name}: {config} is not a file of this repository"
    global_options, sites = caddy_blocks(path.read_text())
    env = environment(service)
    assert sites, f"{path.name}: no site"
    assert ["auto_https", "off"] not in global_options, f"{path.name}: auto_https off"
    upstreams: set[str] = set()
    for address, entries in sites.items():
        for site in address.split():
            assert not site.startswith("http://") and not site.endswith(":80"), (
                f"{path.name}: {site} is plain HTTP: basic auth would cross the network in clear"
            )
        guards = [tokens for blocks, tokens in entries if blocks == (address,) and tokens[0] in BASIC_AUTH]
        assert guards, f"{path.name}: site {address} has no site-wide basic_auth"
        for guard in guards:
            assert all(word in ("bcrypt", "argon2id") for word in guard[1:]), (
                f"{path.name}: `{' '.join(guard)}` guards only what its matcher matches"
            )
        credentials = [tokens for blocks, tokens in entries if len(blocks) == 2 and blocks[1].split()[0] in BASIC_AUTH]
        assert credentials, f"{path.name}: basic_auth of {address} names no user"
        for tokens in credentials:
            assert len(tokens) == 2, f"{path.name}: a basic_auth entry is `<user> <hash>`: {tokens}"
            variable = re.fullmatch(r"\{\$(\w+)\}", tokens[1])
            assert variable, f"{path.name}: the password hash must come from the environment, not this repository"
            value = env.get(variable.group(1), "")
            assert REQUIRED_VARIABLE.match(value), (
                f"service {name}: {variable.group(1)} must be a required variable (${{NAME:?...}}), got {value!r}"
            )
        upstreams |= {word for _, tokens in entries if tokens[0] == "reverse_proxy" for word in tokens[1:]}
    return upstreams


# --- the tests ----------------------------------------------------------------------------


def test_the_temporal_frontend_is_published_by_nobody() -> None:
    for name, service in services().items():
        assert service.get("network_mode") != "host", f"service {name} shares the host's network: all its ports open"
        for host_ports, container_ports in published_ports(service):
            assert TEMPORAL_FRONTEND_PORT not in container_ports, f"service {name} publishes the Temporal frontend"
            assert host_ports is None or TEMPORAL_FRONTEND_PORT not in host_ports, (
                f"service {name} publishes port {TEMPORAL_FRONTEND_PORT}"
            )
        if image(service).startswith("temporalio/"):
            assert not service.get("ports"), f"service {name} ({image(service)}) publishes ports"


def test_the_temporal_ui_is_reached_only_through_an_authenticating_proxy() -> None:
    ui_services = {name for name, service in services().items() if image(service).startswith("temporalio/ui")}
    assert ui_services, "no temporalio/ui service: this test no longer checks what it should"
    for name in ui_services:
        assert not services()[name].get("ports"), f"the Temporal UI ({name}) is published without a proxy"

    upstreams: set[str] = set()
    for name, service in services().items():
        if not service.get("ports"):
            continue
        if built_from_this_repository(service) and any(uvicorn_invocations(argv(service.get("command")))):
            continue  # the API: its own authentication on every route
        upstreams |= check_authenticating_proxy(name, service)
    for name in ui_services:
        assert f"{name}:{TEMPORAL_UI_CONTAINER_PORT}" in upstreams, (
            f"no authenticating proxy forwards to {name}:{TEMPORAL_UI_CONTAINER_PORT}: the UI is unreachable"
        )


def test_uvicorn_never_believes_proxy_headers_by_itself() -> None:
    in_compose = 0
    for name, service in services().items():
        for key in ("command", "entrypoint"):
            for invocation in uvicorn_invocations(argv(service.get(key))):
                check_uvicorn(f"docker-compose.yml, {name}", invocation)
                in_compose += 1
        env = environment(service)
        assert "FORWARDED_ALLOW_IPS" not in env, f"service {name}: FORWARDED_ALLOW_IPS"
        if env.get("TRUSTED_PROXIES") and "${" not in env["TRUSTED_PROXIES"]:
            for proxy in json.loads(env["TRUSTED_PROXIES"]):
                assert ipaddress.ip_network(proxy, strict=False).prefixlen > 0, (
                    f"service {name}: TRUSTED_PROXIES believes every address ({proxy})"
                )
    assert in_compose, "no uvicorn command in docker-compose.yml: the API service is gone?"

    in_dockerfile = 0
    instructions = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for match in re.finditer(r"^\s*(CMD|ENTRYPOINT)\s+(.+)$", instructions, re.MULTILINE | re.IGNORECASE):
        body = match.group(2).strip()
        words = json.loads(body) if body.startswith("[") else shlex.split(body)
        for invocation in uvicorn_invocations(words):
            check_uvicorn("Dockerfile", invocation)
            in_dockerfile += 1
    assert in_dockerfile, "the Dockerfile runs no uvicorn: its default command should be the API's"


def database_url(service_name: str, setting: str) -> re.Match[str]:
    value = environment(services()[service_name]).get(setting, "")
    match = DATABASE_URL.match(value)
    assert match, f"service {service_name}: {setting} is not a PostgreSQL URL: {value!r}"
    assert match["database"] == APP_DATABASE, f"service {service_name}: {setting} names {match['database']}"
    return match


def test_the_api_and_the_worker_connect_as_the_app_role_and_only_migrations_as_the_owner() -> None:
    for name in ("api", "worker"):
        url = database_url(name, "DATABASE_URL")
        assert url["user"] == APP_ROLE, f"service {name} connects as {url['user']}, not {APP_ROLE}"
        assert REQUIRED_VARIABLE.match(url["password"]), f"service {name}: the password must be a required variable"
    migrate = database_url("migrate", "MIGRATION_DATABASE_URL")
    assert migrate["user"] == OWNER_ROLE, f"the migrations run as {migrate['user']}, not {OWNER_ROLE}"
    assert REQUIRED_VARIABLE.match(migrate["password"]), "migrate: the owner's password must be a required variable"
    assert database_url("migrate", "DATABASE_URL")["user"] == APP_ROLE
    for name, service in services().items():
        if name == "migrate":
            continue
        env = environment(service)
        assert "MIGRATION_DATABASE_URL" not in env, f"service {name} has the owner's URL"
        for setting, value in env.items():
            assert f"//{OWNER_ROLE}:" not in value, f"service {name}: {setting} connects as the owner"


def postgres_service() -> tuple[str, dict[str, Any]]:
    found = [(name, service) for name, service in services().items() if image(service).startswith("postgres:")]
    assert len(found) == 1, f"expected one postgres service, found {[name for name, _ in found]}"
    return found[0]


def test_postgresql_asks_every_connection_for_a_scram_password() -> None:
    name, service = postgres_service()
    env = environment(service)
    assert env.get("POSTGRES_HOST_AUTH_METHOD") == "scram-sha-256"
    initdb_args = shlex.split(env.get("POSTGRES_INITDB_ARGS", ""))
    assert "--auth-host=scram-sha-256" in initdb_args
    for arg in initdb_args:
        if arg.startswith(("--auth=", "--auth-host=", "--auth-local=", "-A")):
            assert arg.endswith("scram-sha-256"), f"POSTGRES_INITDB_ARGS: {arg}"
    assert not re.search(r"\btrust\b", " ".join([*env.values(), *argv(service.get("command"))]), re.IGNORECASE)
    assert not service.get("ports"), f"service {name}: PostgreSQL is published"
    assert repository_file_mounted_at(service, "/docker-entrypoint-initdb.d/10-app-database.sh") == (
        POSTGRES_INIT.resolve()
    ), "deploy/postgres-init.sh is not the database's init script"
    for variable in ("OWNER_DB_PASSWORD", "APP_DB_PASSWORD"):
        assert REQUIRED_VARIABLE.match(env.get(variable, "")), f"service {name}: {variable} must be required"


# --- deploy/postgres-init.sh --------------------------------------------------------------


def init_sql_statements(script: str) -> list[str]:
    """The SQL the script's heredocs give psql, one normalized statement each (comments and
    psql meta-commands dropped)."""
    bodies = re.findall(r"<<-?\s*['\"]?(\w+)['\"]?[^\n]*\n(.*?)^\s*\1\s*$", script, re.DOTALL | re.MULTILINE)
    assert bodies, "deploy/postgres-init.sh gives psql no SQL"
    sql = "\n".join(body for _, body in bodies)
    lines = [line.split("--", 1)[0] for line in sql.splitlines() if not line.strip().startswith("\\")]
    return [" ".join(statement.split()) for statement in " ".join(lines).split(";") if statement.strip()]


def created_roles(statements: list[str]) -> dict[str, tuple[set[str], str | None, set[str]]]:
    """{role: (options in upper case, password expression, roles it is IN)} of each CREATE ROLE."""
    roles: dict[str, tuple[set[str], str | None, set[str]]] = {}
    for statement in statements:
        match = re.match(r"CREATE (ROLE|USER) (\w+)\s*(.*)$", statement, re.IGNORECASE)
        if not match:
            continue
        kind, role, rest = match.groups()
        password = re.search(r"\bPASSWORD\s+(:'\w+'|:\"\w+\"|:\w+|'[^']*'|\S+)", rest, re.IGNORECASE)
        member_of = re.search(r"\bIN (?:ROLE|GROUP) ([\w, ]+?)(?=\s+[A-Z]+\b|$)", rest, re.IGNORECASE)
        rest = rest.replace(password.group(0), " ") if password else rest
        rest = rest.replace(member_of.group(0), " ") if member_of else rest
        options = {word.upper() for word in re.findall(r"[A-Za-z]+", rest) if word.upper() != "WITH"}
        if kind.upper() == "USER":
            options.add("LOGIN")
        assert role not in roles, f"role {role} created twice"
        roles[role] = (
            options,
            password.group(1) if password else None,
            {name.strip() for name in member_of.group(1).split(",")} if member_of else set(),
        )
    return roles


def password_comes_from(script: str, expression: str | None, variable: str) -> bool:
    """True when the password is a psql variable (:'name', quoted by psql, so a password with a
    quote in it cannot change the statement) set from the environment variable `variable`."""
    if not expression:
        return False
    psql_variable = re.fullmatch(r":'(\w+)'", expression)
    if not psql_variable:
        return False
    setting = rf"(?:-v|--set|--variable)[ =]['\"]?{psql_variable.group(1)}=['\"]?\$\{{?{variable}\b"
    return re.search(setting, script) is not None


def test_postgres_init_creates_an_owner_a_group_and_a_least_privileged_login_role() -> None:
    script = POSTGRES_INIT.read_text()
    assert not re.search(r"\btrust\b", script, re.IGNORECASE), "deploy/postgres-init.sh mentions trust"
    statements = init_sql_statements(script)
    roles = created_roles(statements)
    assert {OWNER_ROLE, APP_GROUP, APP_ROLE} <= roles.keys(), f"roles created: {sorted(roles)}"
    dangerous = {"SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS"}

    owner_options, owner_password, _ = roles[OWNER_ROLE]
    assert "LOGIN" in owner_options and "NOLOGIN" not in owner_options
    assert not owner_options & dangerous, f"{OWNER_ROLE}: {owner_options & dangerous}"
    assert password_comes_from(script, owner_password, "OWNER_DB_PASSWORD"), f"{OWNER_ROLE}'s password"

    group_options, group_password, _ = roles[APP_GROUP]
    assert "NOLOGIN" in group_options and "LOGIN" not in group_options and group_password is None
    assert not group_options & dangerous, f"{APP_GROUP}: {group_options & dangerous}"

    app_options, app_password, app_member_of = roles[APP_ROLE]
    assert "LOGIN" in app_options and "NOLOGIN" not in app_options
    assert {"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE"} <= app_options, f"{APP_ROLE}: {app_options}"
    assert not app_options & dangerous and "NOINHERIT" not in app_options, f"{APP_ROLE}: {app_options}"
    assert password_comes_from(script, app_password, "APP_DB_PASSWORD"), f"{APP_ROLE}'s password"
    granted = any(re.fullmatch(rf"GRANT {APP_GROUP} TO {APP_ROLE}", s, re.IGNORECASE) for s in statements)
    assert APP_GROUP in app_member_of or granted, f"{APP_ROLE} is not a member of {APP_GROUP}"

    assert any(
        re.fullmatch(rf"CREATE DATABASE {APP_DATABASE} (?:WITH )?OWNER(?: =)? {OWNER_ROLE}\b.*", s, re.IGNORECASE)
        for s in statements
    ), f"the database {APP_DATABASE} is not created owned by {OWNER_ROLE}"
    for statement in statements:
        assert not re.search(rf"\bOWNER(?: TO| =)? {APP_ROLE}\b(?!_)", statement, re.IGNORECASE), (
            f"{APP_ROLE} owns something: {statement}"
        )
        if re.match(rf"ALTER (ROLE|USER) {APP_ROLE}\b(?!_)", statement, re.IGNORECASE):
            assert not {word.upper() for word in statement.split()} & dangerous, statement
        if re.match(r"GRANT ", statement, re.IGNORECASE) and re.search(
            rf"\bTO {APP_ROLE}\b(?!_)", statement, re.IGNORECASE
        ):
            assert granted and re.fullmatch(rf"GRANT {APP_GROUP} TO {APP_ROLE}", statement, re.IGNORECASE), (
                f"privileges go to {APP_GROUP}, never to {APP_ROLE} itself: {statement}"
            )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("8000:8000", [(range(8000, 8001), range(8000, 8001))]),
        ("127.0.0.1:8233:8080/tcp", [(range(8233, 8234), range(8080, 8081))]),
        ("7233", [(None, range(7233, 7234))]),
        ("7000-7300:7000-7300", [(range(7000, 7301), range(7000, 7301))]),
    ],
)
def test_the_port_reader_understands_compose_syntax(entry: str, expected: list[tuple[range | None, range]]) -> None:
    assert published_ports({"ports": [entry]}) == expected
    assert published_ports({"ports": [{"target": 8080, "published": "8233"}]}) == [
        (range(8233, 8234), range(8080, 8081))
    ]
