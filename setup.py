"""The optional C parts of hermipy, each left out where no C compiler is found: hermipy._hostcall (host calls
without ctypes' cost; else ctypes) and the `hermipy` command in C (hermipy/client.c: a run through `hermipy
serve` without starting Python; else bin/hermipy, the same in Python). Everything else is in pyproject.toml."""
import os
import shlex
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from distutils.command.build_scripts import build_scripts    # setuptools provides it (after its import)


class BuildScripts(build_scripts):
    """bin/hermipy as setuptools builds it, then replaced by hermipy/client.c compiled, when that compiles."""

    def run(self):
        super().run()
        target = os.path.join(self.build_dir, "hermipy")
        python = "".join(f"\\{byte:03o}" for byte in os.fsencode(sys.executable))     # a C string, any bytes
        compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
        command = [*compiler, "-O2", "-o", target + ".compiled", "hermipy/client.c", f'-DHERMIPY_PYTHON="{python}"']
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.CalledProcessError) as err:
            print(f"hermipy: the C client was not built, bin/hermipy stays ({err})", file=sys.stderr)
            return
        os.replace(target + ".compiled", target)


setup(ext_modules=[Extension("hermipy._hostcall", ["hermipy/_hostcall.c"], optional=True)],
      cmdclass={"build_scripts": BuildScripts})
