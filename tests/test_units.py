"""labwork.units: the one parser of memory sizes (run configurations' `[resources] memory`, docker
targets' `memory`, the limits kernel ends report) and of durations."""
from __future__ import annotations

import pytest

from labwork.kernels.provisioned_ends import memory_bytes as end_limit
from labwork.project.models import DockerTarget, ResourcesSection
from labwork.units import parse_size


@pytest.mark.parametrize("text, expected", [
    ("4g", 4 << 30), ("1.5G", 3 << 29), ("512MiB", 512 << 20), ("96mb", 96 << 20), (" 256 m ", 256 << 20),
    ("1024", 1024), (1 << 20, 1 << 20), ("2t", 2 << 40), ("10k", 10 << 10),
])
def test_sizes_in_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "g", "4x", "-1m", "1e3", True, -5, "4 gigs"])
def test_a_bad_size_says_what_was_expected(bad):
    with pytest.raises(ValueError, match="a size such as 256m"):
        parse_size(bad)


def test_every_reader_of_a_memory_size_agrees():
    """A run configuration's limit, a docker target's and a reported end's are one parse."""
    assert ResourcesSection(memory="1.5g").memory_bytes == parse_size("1.5g")
    assert end_limit(DockerTarget(memory="96M").memory) == parse_size("96m") == 96 << 20
    assert end_limit("unreadable") is None and end_limit(None) is None
    with pytest.raises(ValueError, match="at least 64m"):
        ResourcesSection(memory="32m")
    with pytest.raises(ValueError, match="512m, 2g"):
        DockerTarget(memory="0m")
