"""The image (deploy/Dockerfile) cannot be built here (no Docker engine): these tests keep
it in step with what `make` installs and runs, and run its entry point on the .venv."""

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import manifest_rules
import requests
from bobdesk_devtools.stack import free_port
from bobdesk_devtools.testing import wait_http

DEPLOY = manifest_rules.DEPLOY_DIR
ROOT = DEPLOY.parent
VENV_BIN = Path(sys.executable).parent

# The start commands, verbatim: entry point command -> what it must run.
MAINTENANCE = {
    "rotate-keys": "python -m connections_service.cli rotate-keys",
    "ensure-indexes-connections": "python -m connections_service.cli ensure-indexes",
    "ensure-indexes-invoices": "python -m invoices_service.cli ensure-indexes",
    "ensure-indexes-ingest": "python -m ingest_worker.cli ensure-indexes",
}
# Makefile target -> entry point command.
MAKE_TARGETS = {"run-connections": "connections-service", "run-invoices": "invoices-service",
                "run-webhooks": "webhooks", "run-worker": "poller"}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in text.splitlines()) if line]


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def makefile_recipes() -> dict[str, str]:
    recipes, target = {}, None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([a-z][a-z-]*):", line)
        if match:
            target = match[1]
        elif line.startswith("\t") and target:
            recipes[target] = recipes.get(target, "") + line.strip() + "\n"
    return recipes


def makefile_gunicorn() -> str:
    value = re.search(r"^GUNICORN\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    return value.replace("$(BIN)/", "").strip()


def entrypoint_branches() -> dict[str, str]:
    return dict(re.findall(r"^\s+([a-z][a-z-]*)\)\s+(.*?)\s*;;\s*$", manifest_rules.ENTRYPOINT.read_text(), re.M))


def install_packages(variable: str = "PACKAGES") -> list[str]:
    """The packages tools/install.sh (make install) installs, in its order: the production ones
    (`PACKAGES`, what the image holds) or the development-only ones (`DEV_PACKAGES`)."""
    return re.search(rf"^{variable}=\(([^)]*)\)", (ROOT / "tools" / "install.sh").read_text(), re.M)[1].split()


DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def test_image_is_multi_stage_slim_and_non_root():
    build, *_, final = stages(DOCKERFILE)
    assert len(stages(DOCKERFILE)) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE, re.M)[1]
    assert "-slim" in base
    assert all(args.split()[0] == "${PYTHON_IMAGE}" for stage in stages(DOCKERFILE)
               for instruction, args in stage if instruction == "FROM")
    user = [args for instruction, args in final if instruction == "USER"]
    assert user and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user[-1]), "a numeric non-root USER"
    final_text = " ".join(args for _, args in final)
    for build_tool in ("pip install", "apt-get install", "apk add", "gcc", "build-essential", "make "):
        assert build_tool not in final_text, f"the runtime stage must not carry {build_tool!r}"
    assert ("ENTRYPOINT", '["bobdesk"]') in final
    assert any(instruction == "COPY" and args.split()[:2] == ["--from=build", "/opt/bobdesk"]
               for instruction, args in final)
    assert any(instruction == "COPY" and args.split() == ["deploy/image/entrypoint.sh", "/usr/local/bin/bobdesk"]
               for instruction, args in final)
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")


def test_the_image_listens_on_the_pods_address_where_development_keeps_to_loopback():
    final = stages(DOCKERFILE)[-1]
    env = shlex.split(" ".join(args for instruction, args in final if instruction == "ENV"))
    assert "BIND_HOST=0.0.0.0" in env
    assert "BIND_HOST" not in (DEPLOY / "base" / "settings.env").read_text(), "one place says it: the image"


def test_image_installs_the_packages_make_installs_pinned_by_the_same_constraints():
    build = stages(DOCKERFILE)[0]
    installs = [shlex.split(args.split("&&")[0]) for instruction, args in build
                if instruction == "RUN" and "pip install" in args]
    assert len(installs) == 1, installs
    argv = installs[0][installs[0].index("install") + 1:]
    assert argv[:2] == ["-c", "constraints.txt"], "pinned by constraints.txt, like make install"
    assert argv[2:] == [f"./{package}" for package in install_packages()], "the same packages, not editable"
    copied = {args.split()[0].rstrip("/") for instruction, args in build if instruction == "COPY"}
    assert {"constraints.txt", *install_packages()} <= copied
    dev_tools = [re.split(r"[<>=\[ ]", line)[0] for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    # Removing an installer (`pip uninstall -y pip setuptools wheel`) installs nothing.
    steps = re.sub(r"pip uninstall -y[\w\s-]*", "", " ".join(args for _, args in instructions(DOCKERFILE)))
    for tool in ["requirements-dev.txt", *dev_tools]:
        assert not re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", steps, re.I), f"{tool} is dev-only"


def test_production_wheels_hold_production_code_only(tmp_path):
    """What the image installs, built as pip builds it: no simulator, demo or test helper, nothing
    that imports pytest; the development-only packages are neither copied nor installed."""
    assert install_packages("DEV_PACKAGES"), "tools/install.sh names its development-only packages"
    # Built from copies of the tracked sources: setuptools reuses an in-tree build/ directory, whose
    # stale files would otherwise end up in the wheel.
    sources = tmp_path / "sources"
    for package in install_packages():
        shutil.copytree(ROOT / package, sources / package, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), *(str(sources / package) for package in install_packages())],
                           capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stderr
    wheels = sorted(tmp_path.glob("*.whl"))
    assert len(wheels) == len(install_packages())
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            modules = [name for name in archive.namelist() if name.endswith(".py")]
            assert modules, wheel.name
            for name in modules:
                assert not re.search(r"(^|/)(\w*sim\w*|demo\w*|testing|conftest)(/|\.py$)", name), (wheel.name, name)
                source = archive.read(name).decode()
                assert not re.search(r"^\s*(import|from)\s+pytest\b", source, re.M), (wheel.name, name)
    steps = " ".join(args for _, args in instructions(DOCKERFILE))
    for package in install_packages("DEV_PACKAGES"):
        assert not re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", steps), f"{package} is dev-only"


def test_runtime_dependencies_are_pinned_in_constraints():
    """The image resolves exactly what the lock says: every runtime dependency has a pin."""
    pinned = {re.split(r"==", line)[0].lower().replace("_", "-")
              for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    for package in install_packages():
        pyproject = (ROOT / package / "pyproject.toml").read_text()
        block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", pyproject, re.S | re.M)[1]
        for requirement in re.findall(r'"([^"]+)"', block):
            name = re.split(r"[<>=!~\[; ]", requirement)[0].lower().replace("_", "-")
            assert name.startswith("bobdesk-") or name in pinned, f"{package}: {name} has no pin in constraints.txt"


def test_dockerignore_keeps_what_the_build_copies():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = {args.split()[0].rstrip("/") for stage in stages(DOCKERFILE) for instruction, args in stage
               if instruction == "COPY" and not args.startswith("--from")}
    assert all(source in kept or any(source.startswith(k + "/") for k in kept) for source in sources), (sources, kept)


def test_entry_point_starts_each_component_as_the_makefile_does():
    recipes, branches = makefile_recipes(), entrypoint_branches()
    gunicorn = makefile_gunicorn()
    serve = re.search(r"^serve\(\) \{(.*?)^\}", manifest_rules.ENTRYPOINT.read_text(), re.S | re.M)[1]
    assert f'exec {gunicorn} "$2"' in serve, "the Makefile's gunicorn command and config"
    for target, command in MAKE_TARGETS.items():
        recipe = recipes[target]
        app = re.search(r"'([\w.]+:create_app\(\))'", recipe)
        if app:
            assert f"$(GUNICORN) '{app[1]}'" in recipe
            assert re.fullmatch(rf"serve \"\$\{{\w+_PORT:-\d+\}}\" '{re.escape(app[1])}'", branches[command]), target
            port_variable = re.search(r"PORT=\$\((\w+)\)", recipe)[1]
            assert f"${{{port_variable}:-" in branches[command], f"{target}: same port variable"
        else:
            module = re.search(r"\$\(BIN\)/(python -m [\w.]+)", recipe)[1]
            assert branches[command] == f'exec {module} "$@"', target
    for command, run in MAINTENANCE.items():
        assert branches[command] == f'exec {run} "$@"', command
    assert set(branches) == set(MAKE_TARGETS.values()) | set(MAINTENANCE)
    assert set(branches) == manifest_rules.entrypoint_commands()


def run_entrypoint(*args, env=None, timeout=10):
    return subprocess.run(["sh", str(manifest_rules.ENTRYPOINT), *args], capture_output=True, text=True,
                          timeout=timeout, env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", **(env or {})}, check=False)


def test_entry_point_lists_its_commands_and_runs_anything_else():
    usage = run_entrypoint("help")
    assert usage.returncode == 0
    assert all(f"  {command} " in usage.stdout for command in entrypoint_branches())
    through = run_entrypoint("python", "-c", "import bobdesk_shared; print('through')")
    assert (through.returncode, through.stdout) == (0, "through\n")


def test_entry_point_serves_under_gunicorn_with_a_fresh_metrics_directory(start_process, tmp_path, test_env):
    """`bobdesk webhooks` as in the pod: exec'd gunicorn (SIGTERM reaches it), metrics from a wiped directory."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale, from a previous container")
    port = free_port()
    process = start_process(["sh", str(manifest_rules.ENTRYPOINT), "webhooks"], {
        **test_env, "PATH": f"{VENV_BIN}:/usr/bin:/bin", "PORT": str(port), "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "WEBHOOK_PROCESSOR_IN_RECEIVER": "0",
    }, name="webhooks")
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=20)
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert metrics.status_code == 200 and "http_requests_total" in metrics.text
    assert not (metrics_dir / "counter_999999.db").exists()
    assert "gunicorn" in Path(f"/proc/{process.pid}/cmdline").read_text(), "sh must exec gunicorn"
    assert process.stop(timeout=20) == 0, process.output()
