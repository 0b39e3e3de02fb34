#!/usr/bin/env python
"""Django's command-line utility for the STS calcinosis EDC."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trial.settings")
    from django.core.management import execute_from_command_line

    from trial.commands import command_audit_context

    # Every management command runs inside an audit context naming the command and the
    # operating-system user, so changes made from the shell are attributed too.
    with command_audit_context(sys.argv):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
