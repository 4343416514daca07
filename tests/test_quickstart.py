"""The README's quick start and what CI runs (.ci/run) are the same commands, in the same order."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def readme_quickstart_commands():
    """The indented command lines of the README's "Quick start" section, comments stripped."""
    section = re.search(r"^## Quick start\n(.*?)^## ", _read("README.md"), re.S | re.M).group(1)
    return [line.split("  #")[0].strip() for line in section.splitlines() if line.startswith("    ")]


def ci_commands():
    """The lines of .ci/run that are neither comments, blank, nor shell setup."""
    lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    return [line for line in lines if line.startswith("pip install")]


def test_readme_quickstart_has_the_demo_then_the_tests():
    commands = readme_quickstart_commands()
    assert commands == ['pip install -e . && mr2ct demo', 'pip install -e ".[test]" && pytest']


def test_ci_runs_the_readme_quickstart_in_order():
    demo, tests = readme_quickstart_commands()
    assert ci_commands() == [demo + " --quick", tests]


def test_ci_does_not_upgrade_pip_or_install_extras_of_its_own():
    script = _read(".ci", "run")
    assert "--upgrade" not in script and " -U " not in script
    assert re.search(r"python3 -m venv ", script)


def test_readme_says_the_full_demo_is_the_same_command_without_quick():
    section = re.search(r"^## Quick start\n(.*?)^## ", _read("README.md"), re.S | re.M).group(1)
    assert "`mr2ct demo --quick`" in section and "without `--quick`" in section
