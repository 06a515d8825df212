"""Project folders: `labwork.toml`, compute targets and run configurations."""
from labwork.project.files import (Project, attach_target, detach_target, find_root, init_project,
                                   load_project)
from labwork.project.models import RunConfig

__all__ = ["Project", "RunConfig", "attach_target", "detach_target", "find_root", "init_project",
           "load_project"]
