"""Metadata lives in setup.cfg. This file only adds the start-up hook file to the wheel's root.

``frossl_plugin_hook.pth`` must sit directly in site-packages, which declarative setuptools
metadata cannot express; see frossl_plugin/_import_hook.py for what it does.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK_FILE = "frossl_plugin_hook.pth"


class BuildPyWithStartupHook(build_py):
    def run(self):
        super().run()
        self.copy_file(HOOK_FILE, os.path.join(self.build_lib, HOOK_FILE), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, HOOK_FILE)]


setup(cmdclass={"build_py": BuildPyWithStartupHook})
