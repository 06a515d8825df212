"""`labwork computetarget attach | list | detach`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from labwork.cli.output import console, print_json, print_table

app = typer.Typer(no_args_is_help=True)
ProjectOpt = Annotated[Optional[Path], typer.Option("--project", "-p", help="project folder (default: here)")]


def _target_summary(t) -> str:  # noqa: ANN001
    data = t.model_dump(exclude={"type", "description"}, exclude_none=True)
    return ", ".join(f"{k}={v}" for k, v in data.items())


@app.command("attach")
def attach(kind: Annotated[str, typer.Argument(help="local | spark | livy | docker | remote")],
           name: Annotated[str, typer.Option("--name", help="name of the target and its run configuration")],
           master: Annotated[Optional[str], typer.Option(help="spark: master URL (default local[*])")] = None,
           via: Annotated[Optional[str], typer.Option(help="spark: kernel (PySpark in the kernel) or livy")] = None,
           url: Annotated[Optional[str], typer.Option(help="livy: endpoint URL")] = None,
           auth: Annotated[Optional[str], typer.Option(help="livy: none | basic | kerberos")] = None,
           username: Annotated[Optional[str], typer.Option(help="livy: user name")] = None,
           password_env: Annotated[Optional[str], typer.Option(help="livy: env var holding the password")] = None,
           image: Annotated[Optional[str], typer.Option(help="docker: base image (default python:3.11-slim)")] = None,
           memory: Annotated[Optional[str], typer.Option(help="docker: memory limit (512m, 2g)")] = None,
           cpus: Annotated[Optional[float], typer.Option(help="docker: CPU limit (1, 0.5)")] = None,
           docker_host: Annotated[Optional[str], typer.Option(help="docker: daemon (unix://, tcp://, ssh://user@vm)")] = None,
           host: Annotated[Optional[str], typer.Option(help="remote: host name")] = None,
           user: Annotated[Optional[str], typer.Option(help="remote: ssh user; docker: container uid[:gid]")] = None,
           port: Annotated[Optional[int], typer.Option(help="remote: ssh port")] = None,
           key_file: Annotated[Optional[str], typer.Option(help="remote, or docker with --docker-host ssh://: ssh key file")] = None,
           known_hosts: Annotated[Optional[str], typer.Option(help="remote, or docker over ssh://: known_hosts file (default ~/.ssh/known_hosts)")] = None,
           python: Annotated[Optional[str], typer.Option(help="remote: interpreter on the host (default python3)")] = None,
           project_files: Annotated[Optional[str], typer.Option(help="remote, or docker over ssh://: detect | shared | copy (rsync'd at kernel start)")] = None,
           framework: Annotated[Optional[str], typer.Option(help="run configuration framework: python | pyspark | spark")] = None,
           project: ProjectOpt = None) -> None:
    """Attach a compute target and write a run configuration of the same name."""
    from labwork.project import attach_target
    options = {"master": master, "via": via, "url": url, "auth": auth, "username": username,
               "password_env": password_env, "image": image, "host": host, "user": user,
               "port": port, "key_file": key_file, "memory": memory, "cpus": cpus,
               "docker_host": docker_host, "known_hosts": known_hosts, "python": python,
               "project_files": project_files}
    p = attach_target(project, kind, name, options, framework=framework)
    console.print(f"attached compute target [bold]{name}[/] ({kind}) and run configuration "
                  f"[bold]{name}[/] to {p.name}; its kernel is '{p.name} {name}'")


@app.command("list")
def list_(project: ProjectOpt = None, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Compute targets of the project."""
    from labwork.project import load_project
    p = load_project(project)
    if json:
        print_json({n: t.model_dump(mode="json") for n, t in p.targets.items()})
        return
    print_table(["name", "type", "settings"], [(n, t.type, _target_summary(t)) for n, t in sorted(p.targets.items())],
                title=f"compute targets of {p.name}")
    for e in p.problems:
        console.print(f"[yellow]problem:[/] {e}")


@app.command("detach")
def detach(name: str, project: ProjectOpt = None) -> None:
    """Remove a compute target and the run configurations that use it."""
    from labwork.project import detach_target
    p = detach_target(project, name)
    console.print(f"detached {name} from {p.name}")
