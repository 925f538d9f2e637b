"""Metadata lives in setup.cfg. This file only adds the start-up hook file to the wheel's root.

``frossl_plugin_hook.pth`` must sit directly in site-packages, which declarative setuptools
metadata cannot express; see frossl_plugin/_import_hook.py for what it does. Editable installs
(``pip install -e .``) get it too, and a layout that Hydra's plugin scan can see.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HOOK_FILE = "frossl_plugin_hook.pth"


class BuildPyWithStartupHook(build_py):
    def run(self):
        super().run()
        self.copy_file(HOOK_FILE, self._hook_target(), preserve_mode=0)

    def _hook_target(self) -> str:
        if getattr(self, "editable_mode", False):
            # editable wheels are assembled in install_lib; build_lib is thrown away
            return os.path.join(self.get_finalized_command("install").install_lib, HOOK_FILE)
        return os.path.join(self.build_lib, HOOK_FILE)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [os.path.join(self.build_lib, HOOK_FILE)]


class EditableWheelAsLinkTree(editable_wheel):
    """``pip install -e .`` defaults to setuptools' "strict" mode: a tree of links to the sources
    in build/, on sys.path through a plain .pth line. Hydra finds ``hydra_plugins.frossl_plugin``
    only by scanning folders on sys.path, which the default import-hook mode hides from it. Edits
    show at once; a new file needs the install command again."""

    def finalize_options(self):
        self.mode = self.mode or "strict"
        super().finalize_options()


setup(cmdclass={"build_py": BuildPyWithStartupHook, "editable_wheel": EditableWheelAsLinkTree})
